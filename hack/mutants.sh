#!/usr/bin/env bash
# Mutants of the model test (docs/testing.md, "the model test of the
# agent's whole life"): each reverts one fix that a finding asked for, and
# the model's lives must then fail. Each mutant is built in a throwaway
# worktree of HEAD, so the checkout is never edited.
#
#   hack/mutants.sh table [NAME...]   the fixed lives (1,000 on Docker's rules,
#                                     500 on the CRI's) and the replayed ones;
#                                     prints the first failing life of each test
#   hack/mutants.sh search NAME [N] [RULES]
#                                     N random lives (default 20000), one
#                                     engine call at a time, on Docker's rules
#                                     or RULES (TestAgentLifeOnCRI,
#                                     TestAgentLifeWithTheRuntimeClockAhead),
#                                     for a new seed to replay
#   hack/mutants.sh replay            every mutant against its replayed life
#                                     (TestAgentLivesThatFoundBugs/NAME), which
#                                     must fail; make test runs this
#
# The edits are exact strings of the code as it is (hack/mutants.py): when
# the code moves, a mutant says so and stops, and replay fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${MUTANTS_OUT:-/tmp/imagecleanup-mutants}
mkdir -p "$out"

build() { # build NAME: the test binary of the controllers with mutant NAME
	local name=$1 wt="$out/worktree-$1"
	rm -rf "$wt"
	git -C "$root" worktree prune
	git -C "$root" worktree add -q --detach "$wt" HEAD
	(cd "$wt" && python3 "$root/hack/mutants.py" "$name" && go test -c -o "$out/$name.test" ./controllers)
	git -C "$root" worktree remove --force "$wt"
}

# scratch: an empty working directory for a run, so that rapid's files of
# failing lives (testdata/rapid) land there and not in the checkout, where
# every later go test would replay them.
scratch() { rm -rf "$out/run" && mkdir -p "$out/run" && cd "$out/run"; }

# verdict RC LOG SURVIVED: the lives that failed, with their seeds; else
# SURVIVED when the run ended well, or how it ended (killed, crashed).
verdict() {
	if grep -qE "failed after [0-9]+ tests" "$2"; then
		grep -oE "failed after [0-9]+ tests: .{0,160}|rapid.seed=[0-9]+|^--- FAIL.*" "$2"
	elif [ "$1" -eq 0 ]; then
		echo "   $3"
	else
		echo "   the run ended with exit $1 before a verdict: see $2"
	fi
}

cmd=${1:-table}
shift || true
case $cmd in
table)
	names=("$@")
	[ ${#names[@]} -gt 0 ] || mapfile -t names < <(python3 "$root/hack/mutants.py" --list)
	for name in "${names[@]}"; do
		echo "== $name: $(python3 "$root/hack/mutants.py" --describe "$name")"
		build "$name"
		rc=0
		(scratch && "$out/$name.test" -test.run 'TestAgentLife$|TestAgentLifeOnCRI|TestAgentLifeWithTheRuntimeClockAhead|TestAgentLivesThatFoundBugs' \
			-test.v >"$out/$name.log" 2>&1) || rc=$?
		verdict "$rc" "$out/$name.log" "the mutant survived every life"
	done
	;;
search)
	name=$1 checks=${2:-20000} rules=${3:-TestAgentLife}
	build "$name"
	rc=0
	(scratch && "$out/$name.test" -test.run "^${rules}\$" -life.checks="$checks" -life.seed=0 -life.calls=1 \
		-rapid.shrinktime=10s >"$out/search-$name.log" 2>&1) || rc=$?
	verdict "$rc" "$out/search-$name.log" "no life failed in $checks"
	;;
replay)
	# Built with go's -overlay (the edited files beside, in place of the
	# originals): no worktree, and the build cache of the checkout's own
	# test binaries serves every package the mutant leaves alone. The test
	# that catches a mutant is its replayed life, or one it names.
	failed=0
	mapfile -t names < <(python3 "$root/hack/mutants.py" --list)
	for name in "${names[@]}"; do
		rc=0
		overlay=$(cd "$root" && python3 hack/mutants.py --overlay "$name" "$out/overlay-$name") || rc=$?
		if [ "$rc" -ne 0 ]; then
			echo "mutants: $name no longer applies: update hack/mutants.py" >&2
			failed=1
			continue
		fi
		IFS=$'\t' read -r pkg run flags < <(python3 "$root/hack/mutants.py" --catcher "$name")
		(cd "$root" && go test -c -overlay "$overlay" -o "$out/$name.test" "$pkg")
		rc=0
		# shellcheck disable=SC2086 # flags are words
		(scratch && "$out/$name.test" -test.run "$run" -test.v $flags >"$out/replay-$name.log" 2>&1) || rc=$?
		if [[ "$run" == */* ]] && ! grep -q "^=== RUN .*/${name}\$" "$out/replay-$name.log"; then
			echo "mutants: $name has no life in lifesThatFoundBugs: find one (hack/mutants.sh search $name)" >&2
			failed=1
			continue
		fi
		if [ "$rc" -eq 0 ]; then
			if grep -q -- "^--- PASS" "$out/replay-$name.log"; then
				echo "mutants: $name survived $run ($pkg): find a life that catches it (hack/mutants.sh search $name)" >&2
			else
				echo "mutants: $name: $run ($pkg) ran no test: is its life in lifesThatFoundBugs?" >&2
			fi
			failed=1
			continue
		fi
		if ! grep -q -- "^--- FAIL" "$out/replay-$name.log"; then
			echo "mutants: $name: $run ended with exit $rc before a verdict: see $out/replay-$name.log" >&2
			failed=1
			continue
		fi
		echo "mutants: $name fails $run: $(grep -m1 -oE '(invariant [0-9a-z]+: |_test.go:[0-9]+: ).{0,100}' "$out/replay-$name.log")"
	done
	exit "$failed"
	;;
*)
	sed -n '2,14p' "$0"
	exit 2
	;;
esac
