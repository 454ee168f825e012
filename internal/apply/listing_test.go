package apply

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// A re-check that asks while a listing is under way is not served by it:
// it joins the next, which begins once that one ended and serves everyone
// who joined meanwhile, each the containers of its own image.
func TestSharedListingServesOnlyListingsBegunAfterTheAsk(t *testing.T) {
	var (
		mu      sync.Mutex
		calls   [][]string
		release = make(chan struct{})
	)
	l := &sharedListing{list: func(_ context.Context, ids []string) ([]runtime.Container, error) {
		mu.Lock()
		calls = append(calls, ids)
		n := len(calls)
		mu.Unlock()
		if n == 1 {
			<-release // the first listing stays under way until the others have asked
		}
		var out []runtime.Container
		for _, id := range ids {
			out = append(out, runtime.Container{ID: fmt.Sprintf("listing%d-of-%s", n, id), ImageID: id})
		}
		return out, nil
	}}
	ctx := context.Background()
	got := map[string][]runtime.Container{}
	var wg sync.WaitGroup
	ask := func(id string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			users, err := l.using(ctx, id)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			got[id] = users
			mu.Unlock()
		}()
	}
	ask("a")
	waitFor(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.underWay != nil })
	ask("b")
	ask("c")
	waitFor(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.gathered != nil && len(l.gathered.images) == 2 })
	close(release)
	wg.Wait()
	if want := [][]string{{"a"}, {"b", "c"}}; !slices.EqualFunc(calls, want, slices.Equal) {
		t.Fatalf("listings %v, want %v", calls, want)
	}
	for id, listing := range map[string]string{"a": "listing1", "b": "listing2", "c": "listing2"} {
		if len(got[id]) != 1 || got[id][0].ID != listing+"-of-"+id {
			t.Errorf("%s got %v, want its own container from %s", id, got[id], listing)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("timed out")
		}
	}
}
