package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/go-units"

	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/apply"
	"github.com/imagecleanup/image-cleanup-operator/internal/cleanup"
	"github.com/imagecleanup/image-cleanup-operator/internal/connect"
	"github.com/imagecleanup/image-cleanup-operator/internal/imageclock"
	"github.com/imagecleanup/image-cleanup-operator/internal/plan"
	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// document is the JSON output, documented in docs/cli.md. Fields are only
// ever added, never renamed or removed, within apiVersion
// imagecleanup.io/v1alpha1.
type document struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Policy     string `json:"policy"`
	// Mode is plan or apply.
	Mode string `json:"mode"`
	// DryRun: nothing was removed (plan, or a policy with dryRun); the
	// removed lists say what apply would remove.
	DryRun bool `json:"dryRun"`
	// Suspended: the policy says suspend, so nothing was looked at.
	Suspended bool `json:"suspended,omitempty"`
	// Endpoint is the address of the runtime the sweep ran on.
	Endpoint string `json:"endpoint"`
	// Runtime, RuntimeVersion and ImageStore say which runtime answered
	// (docker, containerd, cri-o), its version, and where it keeps images
	// (containerd, or a classic store's driver: overlay2).
	Runtime        string `json:"runtime,omitempty"`
	RuntimeVersion string `json:"runtimeVersion,omitempty"`
	ImageStore     string `json:"imageStore,omitempty"`
	// DeprecatedEngine and DeprecatedEngineVersion repeat Endpoint and
	// RuntimeVersion under their first names: fields of this apiVersion
	// are never renamed or removed.
	DeprecatedEngine        string               `json:"engine"`
	DeprecatedEngineVersion string               `json:"engineVersion,omitempty"`
	RemovedImages           []apply.RemovedImage `json:"removedImages"`
	RemovedContainers       []plan.ContainerRef  `json:"removedContainers"`
	Blocked                 []plan.Decision      `json:"blocked"`
	Skipped                 []plan.Decision      `json:"skipped"`
	Failed                  []apply.Failure      `json:"failed"`
	// Decisions count every decision by reason, with sizes: the agent's
	// report gives the same counts (status.decisions).
	Decisions []apply.Tally `json:"decisions"`
	// Disk is the runtime's data filesystem around the sweep, for a policy
	// with diskUsage.
	Disk *diskDoc `json:"disk,omitempty"`
	// Recovered is what an earlier run of the policy on this runtime began
	// and the runtime did, which no output counted (that run was killed,
	// or the runtime died under a removal): counted here, once.
	Recovered *imageclock.Recovered `json:"recovered,omitempty"`
	// Stopped says why the sweep stopped before the end of its plan.
	Stopped         string  `json:"stopped,omitempty"`
	Summary         summary `json:"summary"`
	DurationSeconds float64 `json:"durationSeconds"`
	// APICalls counts the runtime calls, by method.
	APICalls map[string]int `json:"apiCalls"`
}

type diskDoc struct {
	UsedPercentBefore       float64 `json:"usedPercentBefore"`
	UsedPercentAfter        float64 `json:"usedPercentAfter"`
	InodesUsedPercentBefore float64 `json:"inodesUsedPercentBefore"`
	InodesUsedPercentAfter  float64 `json:"inodesUsedPercentAfter"`
	// Watermark is the high watermark usage was above: space, inodes, or
	// empty (then only images unused for maxUnusedAge were candidates).
	Watermark string `json:"watermark,omitempty"`
}

type summary struct {
	ImagesRemoved     int   `json:"imagesRemoved"`
	ImagesDeleted     int   `json:"imagesDeleted"`
	ContainersRemoved int   `json:"containersRemoved"`
	BytesReclaimed    int64 `json:"bytesReclaimed"`
	Blocked           int   `json:"blocked"`
	Skipped           int   `json:"skipped"`
	Failed            int   `json:"failed"`
	// ImagesRecovered and ContainersRecovered count Recovered.
	ImagesRecovered     int `json:"imagesRecovered"`
	ContainersRecovered int `json:"containersRecovered"`
}

func newDocument(p *v1alpha1.ImageCleanupPolicy, mode, host string, info runtime.Info, out *cleanup.Outcome, elapsed time.Duration, calls map[string]int) document {
	r := &out.Result
	d := document{
		Runtime:                 info.Name,
		RuntimeVersion:          info.Version,
		DeprecatedEngineVersion: info.Version,
		ImageStore:              info.ImageStore,
		APIVersion:              v1alpha1.GroupVersion.String(),
		Kind:                    "SweepResult",
		Policy:                  p.Name,
		Mode:                    mode,
		DryRun:                  r.DryRun,
		Endpoint:                host,
		DeprecatedEngine:        host,
		RemovedImages:           nonNil(r.RemovedImages),
		RemovedContainers:       nonNil(r.RemovedContainers),
		Blocked:                 nonNil(r.Blocked),
		Skipped:                 nonNil(r.Skipped),
		Failed:                  nonNil(r.Failed),
		Decisions:               r.Tallies(),
		Stopped:                 r.Stopped,
		Disk:                    diskDocument(out.Disk),
		DurationSeconds:         elapsed.Seconds(),
		APICalls:                calls,
	}
	d.Summary = summary{
		ImagesRemoved:       len(r.RemovedImages),
		ContainersRemoved:   len(r.RemovedContainers),
		BytesReclaimed:      r.BytesReclaimed,
		Blocked:             len(r.Blocked),
		Skipped:             len(r.Skipped),
		Failed:              len(r.Failed),
		ImagesRecovered:     len(out.Recovered.Images),
		ContainersRecovered: len(out.Recovered.Containers),
	}
	if !out.Recovered.Empty() {
		d.Recovered = &out.Recovered
	}
	for _, ri := range r.RemovedImages {
		if ri.Deleted {
			d.Summary.ImagesDeleted++
		}
	}
	return d
}

func diskDocument(d *cleanup.DiskReport) *diskDoc {
	if d == nil {
		return nil
	}
	return &diskDoc{UsedPercentBefore: d.Before.UsedPercent, UsedPercentAfter: d.After.UsedPercent,
		InodesUsedPercentBefore: d.Before.InodesUsedPercent, InodesUsedPercentAfter: d.After.InodesUsedPercent, Watermark: d.Pressure}
}

// suspendedDocument is the output for a suspended policy: nothing done.
func suspendedDocument(p *v1alpha1.ImageCleanupPolicy, mode string) document {
	return document{
		APIVersion: v1alpha1.GroupVersion.String(), Kind: "SweepResult", Policy: p.Name, Mode: mode,
		DryRun: true, Suspended: true, RemovedImages: []apply.RemovedImage{}, RemovedContainers: []plan.ContainerRef{},
		Blocked: []plan.Decision{}, Skipped: []plan.Decision{}, Failed: []apply.Failure{}, Decisions: []apply.Tally{}, APICalls: map[string]int{},
	}
}

// nonNil makes empty lists print as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// encode writes v as JSON or YAML; the YAML has the JSON's field names.
func encode(w io.Writer, format string, v any) error {
	if format == "yaml" {
		out, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(out)
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeTable(w io.Writer, d document) error {
	if d.Suspended {
		_, err := fmt.Fprintf(w, "policy %s is suspended: nothing to do\n", d.Policy)
		return err
	}
	verb := "removed"
	if d.DryRun {
		verb = "would remove"
	}
	runtimeName := d.Endpoint
	if d.RuntimeVersion != "" {
		runtimeName += fmt.Sprintf(" (%s %s, %s image store)", connect.RuntimeTitle(d.Runtime), d.RuntimeVersion, d.ImageStore)
	}
	fmt.Fprintf(w, "policy %s, %s on %s\n", d.Policy, d.Mode, runtimeName)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(d.RemovedImages) > 0 {
		fmt.Fprintf(tw, "\nIMAGES (%s)\tID\tREFERENCES\tDELETED\tSIZE\n", verb)
		for _, ri := range d.RemovedImages {
			deleted := "no, untagged"
			if ri.Deleted {
				deleted = "yes"
				if ri.Forced {
					deleted = "yes, forced"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ri.Image, runtime.ShortID(ri.ImageID), strings.Join(ri.Refs, " "), deleted, humanBytes(ri.Bytes))
		}
	}
	if len(d.RemovedContainers) > 0 {
		fmt.Fprintf(tw, "\nSTOPPED CONTAINERS (%s)\tID\n", verb)
		for _, c := range d.RemovedContainers {
			fmt.Fprintf(tw, "%s\t%s\n", c.Name, runtime.ShortID(c.ID))
		}
	}
	decisions := func(title string, ds []plan.Decision) {
		if len(ds) == 0 {
			return
		}
		fmt.Fprintf(tw, "\n%s\tID\tREASON\tWHY\n", title)
		for _, dd := range ds {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", dd.Image, runtime.ShortID(dd.ImageID), dd.Reason, dd.Message)
		}
	}
	decisions("BLOCKED", d.Blocked)
	decisions("SKIPPED", d.Skipped)
	if len(d.Failed) > 0 {
		fmt.Fprintf(tw, "\nFAILED\tID\tERROR\n")
		for _, f := range d.Failed {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Image, runtime.ShortID(f.ImageID), f.Error)
		}
	}
	if len(d.Decisions) > 0 {
		fmt.Fprintf(tw, "\nBY REASON\tIMAGES\tSIZE\tELIGIBLE FROM\n")
		for _, t := range d.Decisions {
			eligible := ""
			if !t.EligibleFrom.IsZero() {
				eligible = t.EligibleFrom.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", t.Reason, t.Images, humanBytes(t.Bytes), eligible)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if d.Stopped != "" {
		fmt.Fprintf(w, "\nstopped early: %s\n", d.Stopped)
	}
	if rec := d.Recovered; rec != nil {
		fmt.Fprintf(w, "\nrecovered: %s and %s that a run begun %s removed and no output counted: %s\n",
			count(len(rec.Images), "image", "images"), count(len(rec.Containers), "stopped container", "stopped containers"),
			rec.Since.UTC().Format(time.RFC3339), strings.Join(append(slices.Clone(rec.Images), rec.Containers...), ", "))
	}
	if dd := d.Disk; dd != nil {
		above := "under the high watermarks"
		if dd.Watermark != "" {
			above = "above the high watermark of " + dd.Watermark
		}
		fmt.Fprintf(w, "\ndisk: %.1f %% used before, %.1f %% after (%s)\n", dd.UsedPercentBefore, dd.UsedPercentAfter, above)
	}
	s := d.Summary
	_, err := fmt.Fprintf(w, "\n%s %s (%d deleted, %s) and %s; %d blocked, %d skipped, %d failed; %.2fs\n",
		verb, count(s.ImagesRemoved, "image", "images"), s.ImagesDeleted, humanBytes(s.BytesReclaimed), count(s.ContainersRemoved, "stopped container", "stopped containers"),
		s.Blocked, s.Skipped, s.Failed, d.DurationSeconds)
	return err
}

// count says "1 image", "2 images".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func humanBytes(n int64) string { return units.BytesSize(float64(n)) }
