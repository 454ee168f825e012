"""The mutants of hack/mutants.sh: each reverts one fix in the worktree it
runs in. python3 hack/mutants.py NAME | --list | --describe NAME"""
import sys

MUTANTS = {}


def mutant(name, what):
    def register(f):
        MUTANTS[name] = (what, f)
        return f
    return register


def edit(path, old, new):
    with open(path) as f:
        s = f.read()
    if s.count(old) != 1:
        sys.exit(f"mutant: {path} no longer holds the code this mutant edits:\n{old}")
    with open(path, "w") as f:
        f.write(s.replace(old, new))


@mutant("f1", "issue 17 finding 1: exclusions by tag only, digests ignored")
def _():
    edit("internal/plan/plan.go", "\tif excl.Whole || opts.Exclude.NamesAnyDigest(mi) {", "\tif excl.Whole {")
    edit("internal/plan/plan.go", "\treturn ix.sandboxes[img.ID] || opts.Exclude.Select(mi).Any() ||",
         "\treturn ix.sandboxes[img.ID] || opts.Exclude.Select(match.Image{ID: img.ID, RepoTags: img.RepoTags}).Any() ||")


@mutant("f2", "issue 17 finding 2: a departure is never noticed, from events or the sweep's own removals")
def _():
    edit("internal/imageclock/follow.go", "\t\t\tc.ImageGone(e.ID)\n", "\t\t\t_ = e.ID\n")
    edit("internal/imageclock/follow.go", "\t\t\t\tc.ImageArrived(imageID, e.Time)\n", "\t\t\t\t_ = imageID\n")
    edit("internal/cleanup/cleanup.go", "\t\t\topts.Clock.ImageGone(ri.ImageID) // if it comes back, it arrives again\n", "\t\t\t_ = ri.ImageID\n")


@mutant("f3", "issue 17 finding 3: events credited only to containers the clock already knows")
def _():
    edit("internal/imageclock/follow.go", "\t\tif imageID == \"\" {\n\t\t\tif imageID = resolve(", "\t\tif false {\n\t\t\tif imageID = resolve(")


@mutant("parent", "issue 17 finding 4: a parent's maxUnusedAge does not hold its prune back")
def _():
    edit("internal/plan/plan.go", "\treason, _, _ := ClockGuard(img.Arrived, img.LastUsed, opts, ix.now)",
         "\tnoUse := *opts\n\tnoUse.UnusedFor = 0\n\treason, _, _ := ClockGuard(img.Arrived, img.LastUsed, &noUse, ix.now)")


@mutant("f8", "issue 17 finding 8: a policy change does not stop a running sweep")
def _():
    edit("controllers/node_controller.go", "\treturn func() error {\n\t\tvar p v1alpha1.ImageCleanupPolicy\n",
         "\treturn func() error {\n\t\tif true {\n\t\t\treturn nil\n\t\t}\n\t\tvar p v1alpha1.ImageCleanupPolicy\n")


@mutant("f9", "issue 17 finding 9: keepNewest ranks by arrival, not by build")
def _():
    edit("internal/plan/plan.go", "\t\t\tif !as[i].BuiltAt.Equal(as[j].BuiltAt) {", "\t\t\tif false {")


@mutant("f10", "issue 17 finding 10: what an interrupted sweep removed is never counted")
def _():
    edit("internal/cleanup/cleanup.go",
         "\tout := Outcome{Recovered: opts.Clock.Harvest(opts.Policy, &inv, opts.ReportedThrough, now), Unhonoured: Unhonoured(spec, rt.Capabilities())}",
         "\t_ = opts.Clock.Harvest(opts.Policy, &inv, opts.ReportedThrough, now)\n\tout := Outcome{Unhonoured: Unhonoured(spec, rt.Capabilities())}")


@mutant("pods", "issue 18: neither the plan nor the re-check sees the pods bound to the node")
def _():
    edit("internal/plan/plan.go", "\tix.pods = PodsNaming(opts.PodImages)", "\tix.pods = PodsNaming(nil)")
    edit("internal/apply/apply.go", "\tif x.opts.Pods == nil {\n\t\treturn nil\n\t}", "\tif true {\n\t\treturn nil\n\t}")


@mutant("podsmid", "invariant 4: the re-check does not ask for the pods (a pod bound mid-sweep)")
def _():
    edit("internal/apply/apply.go", "\tif x.opts.Pods == nil {\n\t\treturn nil\n\t}", "\tif true {\n\t\treturn nil\n\t}")


@mutant("use", "invariants 5 and 6: the re-check does not read the image clock (a use mid-sweep)")
def _():
    edit("internal/apply/apply.go", "\tif x.opts.Recent == nil {\n\t\treturn nil\n\t}", "\tif true {\n\t\treturn nil\n\t}")


@mutant("ahead", "invariants 5 and 6: a use stamped later than now falls back to the arrival")
def _():
    edit("internal/plan/plan.go", "\tcase lastUsedAt.After(now):\n\t\treturn now\n", "\tcase lastUsedAt.After(now):\n\t\treturn arrived(arrivedAt, now)\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--list"]:
        print("\n".join(MUTANTS))
    elif sys.argv[1:2] == ["--describe"]:
        print(MUTANTS[sys.argv[2]][0])
    elif len(sys.argv) == 2 and sys.argv[1] in MUTANTS:
        MUTANTS[sys.argv[1]][1]()
    else:
        sys.exit(__doc__)
