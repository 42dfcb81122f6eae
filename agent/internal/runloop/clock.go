package runloop

import (
	"context"
	"time"
)

// Clock is the loop's time: when it is, and waiting. Tests replace it so
// that minutes of backoff and days of certificate lifetime pass at once.
type Clock interface {
	Now() time.Time
	// Sleep waits d, or less when ctx is done, and then returns ctx.Err().
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the system's clock.
type RealClock struct{}

// Now is time.Now.
func (RealClock) Now() time.Time { return time.Now() }

// Sleep waits d or until ctx is done.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return ctx.Err()
}
