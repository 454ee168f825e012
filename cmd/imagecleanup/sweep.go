package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/disk"
	"github.com/imagecleanup/image-cleanup-operator/internal/docker"
	"github.com/imagecleanup/image-cleanup-operator/internal/engine"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
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
	rt, err := docker.New(o.dockerHost)
	if err != nil {
		return exitInvalid, fmt.Errorf("--docker-host: %w", err)
	}
	defer rt.Close()
	rt.RemoveTimeout = o.callTimeout
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	info, err := engineInfo(ctx, rt)
	if err != nil {
		return exitError, fmt.Errorf("cannot reach the Docker engine at %s: %w", rt.Host(), err)
	}
	clock, err := openClock(info, o.stateDir, stderr)
	if err != nil {
		return exitError, err
	}
	out, err := cleanup.Sweep(ctx, rt, &policy.Spec, time.Now(), cleanup.Options{
		Policy: policy.Name, Clock: clock, Protected: o.protect, PlanOnly: o.mode == "plan",
		Disk: measureDisk(cmp.Or(o.dataRoot, info.RootDir)),
	})
	switch {
	case errors.Is(err, cleanup.ErrInvalidPolicy):
		return exitInvalid, &invalidPolicyError{file: o.file, name: policy.Name, reasons: []string{err.Error()}}
	case err != nil:
		return exitError, err
	}
	if code, err := write(stdout, o, newDocument(policy, o.mode, rt.Host(), &out, rt.Calls())); err != nil {
		return code, err
	}
	switch {
	case len(out.Result.Failed) > 0 || out.Result.Stopped != "":
		return exitError, nil
	case o.failOnBlocked && len(out.Result.Blocked) > 0:
		return exitBlocked, nil
	}
	return exitOK, nil
}

// openClock opens the engine's image clock; a clock that had to start
// afresh says so on stderr.
func openClock(info engine.Info, dir string, stderr io.Writer) (*imageclock.Clock, error) {
	clock, warning, err := imageclock.Open(imageclock.FileFor(dir, info.ID))
	if err != nil {
		return nil, err
	}
	if warning != nil {
		fmt.Fprintf(stderr, "warning: %s\n", oneLine(warning))
	}
	return clock, nil
}

// measureDisk measures the engine's data filesystem at dataRoot: --data-root,
// else the engine's DockerRootDir, which must then be on this machine.
func measureDisk(dataRoot string) func() (disk.Usage, error) {
	return func() (disk.Usage, error) {
		u, err := disk.Measure(dataRoot)
		if err != nil {
			return disk.Usage{}, fmt.Errorf("%w (give --data-root where the engine's data root is)", err)
		}
		return u, nil
	}
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

// engineInfo pings the engine (which settles the API version) and asks
// which engine it is, for the image clock's file.
func engineInfo(ctx context.Context, rt *docker.Runtime) (engine.Info, error) {
	if err := rt.Ping(ctx); err != nil {
		return engine.Info{}, err
	}
	return rt.Info(ctx)
}
