"""The mutants of hack/mutants.sh: each reverts one fix in the worktree it
runs in, by exact edits of the code as it is.

python3 hack/mutants.py NAME | --list | --describe NAME | --catcher NAME | --overlay NAME FOLDER"""
import json
import os
import sys

# Each edit names a package folder: the one non-test file in it that holds
# the edited code is the one edited, so that files may be split or renamed.
PLAN, APPLY, SWEEP, FOLLOW = "internal/plan", "internal/apply", "internal/cleanup", "internal/imageclock"
PODS, PODINDEX, ENGINE, AGENT = "controllers", "internal/plan", "internal/runtime", "controllers"

# The executor's re-check of the pods bound to the node, skipped.
NO_PODS_RECHECK = (APPLY, "\tif x.opts.Pods == nil {\n\t\treturn nil\n\t}", "\tif true {\n\t\treturn nil\n\t}")

# The life kept in the model test for a mutant (lifesThatFoundBugs), which
# replay runs; a mutant that random lives rarely reach names a test of its
# own instead: (package, -test.run pattern).
LIFE = None

# name: (what it reverts, [(file, old, new), ...][, the test that catches it])
MUTANTS = {
    "digest-exclusion": ("an exclusion names tags only, not a digest reference's repository (issue 17, finding 1)", [
        (PLAN, "\tif excl.Whole || opts.Exclude.NamesAnyDigest(mi) {", "\tif excl.Whole {"),
        (PLAN, "\treturn ix.sandboxes[img.ID] || opts.Exclude.Select(mi).Any() ||",
         "\ttagsOnly := *img\n\ttagsOnly.RepoDigests = nil\n\treturn ix.sandboxes[img.ID] || opts.Exclude.Select(matchImage(&tagsOnly)).Any() ||"),
    ]),
    "departures": ("an image that leaves is never forgotten, so its return is no arrival (issue 17, finding 2)", [
        (FOLLOW, "\t\tc.ImageLeft(e.ID, e.Time)\n", "\t\t_ = e.ID\n"),
        (FOLLOW, "\t\t\tc.ImageArrived(imageID, e.Time)\n", "\t\t\t_ = imageID\n"),
        (SWEEP, "\t\t\t\topts.Clock.ImageGone(ri.ImageID)\n", "\t\t\t\t_ = ri.ImageID\n"),
    ]),
    "event-uses": ("an event credits only containers the clock already knows (issue 17, finding 3)", [
        (FOLLOW, "\t\tif imageID == \"\" {\n\t\t\tif imageID = resolve(", "\t\tif false {\n\t\t\tif imageID = resolve("),
    ]),
    "parent-guards": ("a parent's maxUnusedAge does not hold its prune back (issue 17, finding 4)", [
        (PLAN, "\treason, _, _ := ClockGuard(img.Arrived, img.LastUsed, opts, ix.now)",
         "\tnoUse := *opts\n\tnoUse.UnusedFor = 0\n\treason, _, _ := ClockGuard(img.Arrived, img.LastUsed, &noUse, ix.now)"),
    ], ("./internal/plan", "^TestPruneHonoursTheParentsGuards$")),
    "change-stops": ("a policy change does not stop a running sweep (issue 17, finding 8)", [
        (AGENT, "\t\tvar p v1alpha1.ImageCleanupPolicy\n\t\tswitch err := r.Client.Get(ctx, types.NamespacedName{Name: swept.Name}, &p); {\n",
         "\t\tif true {\n\t\t\treturn nil\n\t\t}\n\t\tvar p v1alpha1.ImageCleanupPolicy\n\t\tswitch err := r.Client.Get(ctx, types.NamespacedName{Name: swept.Name}, &p); {\n"),
    ]),
    "build-order": ("keepNewest ranks by arrival, not by build (issue 17, finding 9)", [
        (PLAN, "\t\t\tif !as[i].BuiltAt.Equal(as[j].BuiltAt) {", "\t\t\tif false {"),
    ]),
    "killed-counted": ("what a killed sweep removed is never counted (issue 17, finding 10)", [
        (SWEEP, "\tout := Outcome{Recovered: opts.Clock.Journal().Harvest(opts.Policy, &inv, opts.ReportedThrough, s.mark), Harvested: true,",
         "\t_ = opts.Clock.Journal().Harvest(opts.Policy, &inv, opts.ReportedThrough, s.mark)\n\tout := Outcome{Harvested: true,"),
    ]),
    "pods": ("neither the plan nor the re-check sees the pods bound to the node (issue 18)", [
        (PLAN, "\tix.pods = PodsNaming(opts.PodImages)", "\tix.pods = PodsNaming(nil)"),
        NO_PODS_RECHECK,
    ]),
    "pods-midsweep": ("the re-check does not ask for the pods: a pod bound mid-sweep (invariant 4)", [NO_PODS_RECHECK],
                      ("./internal/apply", "^TestRunKeepsAnImageAPodWasBoundTo$")),
    "use-midsweep": ("the re-check does not read the image clock: a use mid-sweep (invariants 5 and 6)", [
        (APPLY, "\tif x.opts.Recent == nil {\n\t\treturn nil\n\t}", "\tif true {\n\t\treturn nil\n\t}"),
    ], ("./internal/cleanup", "^TestWhatTheClockLearnsMidSweepKeepsTheImage$")),
    "clock-ahead": ("a use stamped later than now falls back to the arrival (invariants 5 and 6)", [
        (PLAN, "\tcase lastUsedAt.After(now):\n\t\treturn now\n", "\tcase lastUsedAt.After(now):\n\t\treturn arrived(arrivedAt, now)\n"),
    ]),
    "image-volumes": ("an image volume's image is not read (issue 33, finding 1)", [
        (PODS, "\t\t\tadd(\"image volume \"+v.Name, v.Image.Reference)\n", "\t\t\t_ = v\n"),
    ]),
    "other-clients": ("a stopped container another client made counts as the runtime's own (issue 33, finding 2)", [
        (ENGINE, "\tif c.MadeBy != \"\" {\n\t\treturn false\n\t}\n", ""),
    ]),
    "short-ids": ("a pod's short ID names no image (issue 33, finding 3)", [
        (PODINDEX, "isHex(hex) && len(hex) <= idLength {", "isHex(hex) && len(hex) == idLength && hex != ref {"),
    ]),
    "unsettled": ("a removal the runtime died under is dropped with its report (issue 33, findings 5 and 6)", [
        (SWEEP, "\t\tunsettled(opts.Clock, opts.Policy, &out)\n", ""),
    ]),
    "harvest-kept": ("a sweep that fails after its harvest loses what the harvest counted", [
        (SWEEP, "\t\t\treturn out, fmt.Errorf(\"%w: %w\", ErrDisk, err)", "\t\t\treturn Outcome{}, fmt.Errorf(\"%w: %w\", ErrDisk, err)"),
    ], ("./internal/cleanup", "^TestASweepThatFailsAfterItsHarvestReturnsIt$")),
    "replayed-names": ("a use replayed by a name that moved since counts only for the image the name names now (invariant 6)", [
        (FOLLOW, "\tif p == nil || !p.byName[e.ID] {\n", "\tif true {\n"),
    ], ("./internal/cleanup", "^TestAUseReplayedByANameThatMovedSinceCountsForItsImage$")),
    "counted-through": ("a sweep that could not list the runtime settles the records before it", [
        (AGENT, "\t\tif s.report != nil && s.report.CountedThrough != nil {\n\t\t\topts.ReportedThrough = s.report.CountedThrough.Time\n",
         "\t\tif s.report != nil && s.report.LastSweepTime != nil {\n\t\t\topts.ReportedThrough = s.report.LastSweepTime.Time\n"),
    ], ("./controllers", "^TestAReportOfASweepThatCouldNotListSettlesNothing$")),
    "returns-unrecorded": ("a sweep does not record what it deleted, so no return is ever counted (the report's returned)", [
        (SWEEP, "\t\t\tif !opts.Clock.Departed(ri.ImageID, imageclock.Departure{Policy: opts.Policy, Image: ri.Image, Refs: ri.Refs, Bytes: ri.Bytes, At: now}) {\n",
         "\t\t\tif true {\n"),
    ], ("./internal/cleanup", "^TestASweepsRemovalThatComesBackIsReturned$")),
    "window-held": ("a due sweep does not wait for its schedule's window (invariant 11)", [
        (AGENT, "\tif d.step != stepSweep || p.Spec.Schedule == nil ||", "\tif true || d.step != stepSweep || p.Spec.Schedule == nil ||"),
    ], ("./controllers", "^TestANewPolicyWaitsForItsWindow$")),
    "window-closes": ("a window that closes does not stop the sweep under way (invariant 11)", [
        (AGENT, "\t\tif swept.Spec.Schedule != nil && sched != nil {\n", "\t\tif false && swept.Spec.Schedule != nil && sched != nil {\n"),
    ], ("./controllers", "^TestAClosingWindowStopsTheSweep$")),
}


def catcher(name):
    """The package, -test.run pattern and further flags of the test that
    must fail with the mutant: its replayed life (not shrunk: its failure is
    enough), unless it names a test of its own."""
    entry = MUTANTS[name]
    if len(entry) > 2 and entry[2] is not LIFE:
        return (*entry[2], "")
    return ("./controllers", f"^TestAgentLivesThatFoundBugs$/^{name}$", "-rapid.shrinktime=1ms")


def holder(name, folder, old):
    """The one non-test Go file in folder that holds old."""
    found = []
    for entry in sorted(os.listdir(folder)):
        if not entry.endswith(".go") or entry.endswith("_test.go"):
            continue
        path = os.path.join(folder, entry)
        with open(path) as f:
            if old in f.read():
                found.append(path)
    if len(found) != 1:
        sys.exit(f"mutant {name}: {len(found)} files of {folder} hold the code it edits (want one):\n{old}")
    return found[0]


def edited(name):
    """The files the mutant edits, as it leaves them: path -> text."""
    out = {}
    for folder, old, new in MUTANTS[name][1]:
        path = holder(name, folder, old)
        s = out.get(path)
        if s is None:
            with open(path) as f:
                s = f.read()
        if s.count(old) != 1:
            sys.exit(f"mutant {name}: {path} no longer holds the code it edits:\n{old}")
        out[path] = s.replace(old, new)
    return out


def apply(name):
    for path, text in edited(name).items():
        with open(path, "w") as f:
            f.write(text)


def overlay(name, folder):
    """Writes the edited files into folder and go's -overlay file naming
    them in place of the originals; prints the overlay file's path."""
    os.makedirs(folder, exist_ok=True)
    replace = {}
    for path, text in edited(name).items():
        copy = os.path.join(folder, path.replace("/", "_"))
        with open(copy, "w") as f:
            f.write(text)
        replace[os.path.abspath(path)] = copy
    spec = os.path.join(folder, "overlay.json")
    with open(spec, "w") as f:
        json.dump({"Replace": replace}, f)
    print(spec)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args == ["--list"]:
        print("\n".join(MUTANTS))
    elif len(args) == 2 and args[0] == "--describe" and args[1] in MUTANTS:
        print(MUTANTS[args[1]][0])
    elif len(args) == 1 and args[0] in MUTANTS:
        apply(args[0])
    elif len(args) == 2 and args[0] == "--catcher" and args[1] in MUTANTS:
        print("\t".join(catcher(args[1])))
    elif len(args) == 3 and args[0] == "--overlay" and args[1] in MUTANTS:
        overlay(args[1], args[2])
    else:
        sys.exit(__doc__)
