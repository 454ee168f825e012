package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/connect"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtimehost"
)

// execute runs plan or apply; the error, if any, is the one line to print.
func execute(ctx context.Context, o *sweepOptions, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	policy, err := loadPolicy(ctx, o.file, stdin)
	switch {
	case ctx.Err() != nil:
		return exitError, fmt.Errorf("interrupted while reading %s", o.file)
	case isPolicyError(err):
		return exitInvalid, err
	case err != nil:
		return exitInvalid, fmt.Errorf("%s: %w", o.file, err)
	}
	if policy.Spec.Suspend {
		return write(stdout, o, suspendedDocument(policy, o.mode))
	}
	endpoint, err := connect.Choose(o.dockerHost, o.endpoint, func() (connect.Endpoint, error) {
		return connect.Find(connect.Sockets("/var/run"))
	})
	if err != nil {
		return exitError, err
	}
	rt, err := connect.Open(endpoint, o.callTimeout)
	if err != nil {
		return exitInvalid, fmt.Errorf("--%s: %w", endpoint.Flag(), err)
	}
	defer rt.Close()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	what := endpoint.Title()
	if err := rt.Ping(ctx); err != nil { // settles the API version
		return exitError, fmt.Errorf("cannot reach the %s at %s: %w", what, rt.Host(), err)
	}
	host, err := runtimehost.Open(ctx, rt, runtimehost.Options{StateDir: o.stateDir, DataRoot: o.dataRoot, ContainerdRoot: o.containerdRoot})
	if err != nil {
		return exitError, fmt.Errorf("the %s at %s: %w", what, rt.Host(), err)
	}
	defer host.Close()
	if host.Warning != nil {
		fmt.Fprintf(stderr, "warning: %s\n", oneLine(host.Warning))
	}
	// What happened since the last run: uses of containers gone since, and
	// images that left (a return is an arrival).
	if err := host.Clock.CatchUp(ctx, rt); err != nil {
		return exitError, fmt.Errorf("reading the %s's events: %w", what, err)
	}
	now := time.Now()
	sw := cleanup.NewSweep(rt, &policy.Spec, now, cleanup.Options{
		Policy: policy.Name, Clock: host.Clock, Protected: o.protect, PlanOnly: o.mode == "plan",
		Disk: host.Disk(ctx), Concurrency: o.runtimeCalls,
	})
	out, err := sw.Run(ctx)
	switch {
	case errors.Is(err, cleanup.ErrInvalidPolicy):
		return exitInvalid, &invalidPolicyError{file: o.file, name: policy.Name, reasons: []string{err.Error()}}
	case err != nil:
		return exitError, err
	}
	for _, note := range out.Unhonoured {
		fmt.Fprintf(stderr, "warning: %s\n", note)
	}
	// Printed, the begun removals of this run are told, and go.
	doc := newDocument(policy, o.mode, rt.Host(), host.Info, &out, time.Since(now), rt.Calls())
	if err := sw.Commit(func() error { _, err := write(stdout, o, doc); return err }); err != nil {
		return exitError, err
	}
	switch {
	case len(out.Result.Failed) > 0 || out.Result.Stopped != "":
		return exitError, nil
	case o.failOnBlocked && len(out.Result.Blocked) > 0:
		return exitBlocked, nil
	}
	return exitOK, nil
}

// write prints the document in the chosen format.
func write(stdout io.Writer, o *sweepOptions, doc document) (int, error) {
	var err error
	if o.output == "table" {
		err = writeTable(stdout, doc)
	} else {
		err = encode(stdout, o.output, doc)
	}
	if err != nil {
		return exitError, fmt.Errorf("writing the result: %w", err)
	}
	return exitOK, nil
}
