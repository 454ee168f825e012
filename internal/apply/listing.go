package apply

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/imagecleanup/image-cleanup-operator/internal/runtime"
)

// sharedListing makes the re-checks' container listings. A re-check joins
// the next listing that has not begun yet, and one listing serves every
// re-check that joined it (group commit). Each re-check still reads
// containers listed after it asked, and it asks only once every earlier
// call of its action ended: the re-check's promise is unchanged. What
// changes is the count: one listing per group of actions re-checking at
// about the same time, instead of one per action (on the CRI each listing
// lists every container of the node).
type sharedListing struct {
	list func(ctx context.Context, imageIDs []string) ([]runtime.Container, error)

	mu       sync.Mutex
	gathered *listing // not begun: re-checks join it
	underWay *listing // begun: too late to join
}

type listing struct {
	images map[string]bool
	done   chan struct{} // closed when users and err are set
	users  []runtime.Container
	err    error
}

// using returns the containers, in any state, whose image is imageID, from
// a listing that begins after this call.
func (l *sharedListing) using(ctx context.Context, imageID string) ([]runtime.Container, error) {
	l.mu.Lock()
	mine, lead := l.gathered, false
	if mine == nil {
		mine, lead = &listing{images: map[string]bool{}, done: make(chan struct{})}, true
		l.gathered = mine
	}
	mine.images[imageID] = true
	before := l.underWay
	l.mu.Unlock()
	if lead {
		// The first to join makes the listing, once the one under way (if
		// any) has ended; the others that joined meanwhile share it.
		if before != nil {
			<-before.done
		}
		l.mu.Lock()
		l.gathered, l.underWay = nil, mine
		images := slices.Sorted(maps.Keys(mine.images))
		l.mu.Unlock()
		mine.users, mine.err = l.list(ctx, images)
		close(mine.done)
	}
	<-mine.done
	if mine.err != nil {
		return nil, mine.err
	}
	var users []runtime.Container
	for _, c := range mine.users {
		if c.ImageID == imageID {
			users = append(users, c)
		}
	}
	return users, nil
}
