package cron

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeClock moves only when told to.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	return ch
}

// Advance moves the clock and wakes every waiter that is due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// waitForWaiters blocks until n goroutines wait on the clock, and returns
// the earliest deadline.
func (c *fakeClock) waitForWaiters(t *testing.T, n int) time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		if len(c.waiters) >= n {
			first := c.waiters[0].at
			for _, w := range c.waiters {
				if w.at.Before(first) {
					first = w.at
				}
			}
			c.mu.Unlock()
			return first
		}
		c.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no goroutine waits on the clock")
	return time.Time{}
}

// step advances the clock to the earliest waiter's deadline.
func (c *fakeClock) step(t *testing.T) {
	at := c.waitForWaiters(t, 1)
	c.Advance(at.Sub(c.Now()))
}

type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) log(e Event) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }

func (r *recorder) kinds(kind string) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, e := range r.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// A run longer than the interval: the covered ticks are skipped and logged,
// runs never overlap, and the next run is at the first tick after the run.
func TestServiceSkipsCoveredTicks(t *testing.T) {
	clock := &fakeClock{now: t0}
	sched, err := Parse("@every 10s")
	require.NoError(t, err)
	var inFlight, maxInFlight, runs atomic.Int32
	var starts []time.Time
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	svc := &Service{Clock: clock, Log: rec.log, Jobs: []Job{{Name: "slow", Schedule: sched, Location: time.UTC,
		Run: func(context.Context) (string, error) {
			n := inFlight.Add(1)
			if n > maxInFlight.Load() {
				maxInFlight.Store(n)
			}
			starts = append(starts, clock.Now())
			if runs.Add(1) == 1 {
				clock.Advance(25 * time.Second) // the build takes 25s
			}
			inFlight.Add(-1)
			return "build 1", nil
		}}}}
	done := make(chan int)
	go func() { done <- svc.Run(ctx) }()
	clock.step(t) // run 1 at t0+10s, until t0+35s
	clock.step(t) // run 2 at t0+45s
	clock.waitForWaiters(t, 1)
	cancel()
	require.Equal(t, 0, <-done)
	require.Equal(t, []time.Time{t0.Add(10 * time.Second), t0.Add(45 * time.Second)}, starts)
	require.EqualValues(t, 1, maxInFlight.Load())
	skipped := rec.kinds("skipped")
	require.Len(t, skipped, 1)
	require.Equal(t, 2, skipped[0].Skipped, "t0+20s and t0+30s were covered by run 1")
	ok := rec.kinds("ok")
	require.Len(t, ok, 2)
	require.Equal(t, 25*time.Second, ok[0].Duration)
	require.Equal(t, "build 1", ok[0].Detail)
	require.Equal(t, t0.Add(45*time.Second), ok[0].Next)
	require.Len(t, rec.kinds("stopped"), 1)
}

// Consecutive failures disable a job; a success in between resets the count.
func TestServiceDisablesAfterConsecutiveFailures(t *testing.T) {
	clock := &fakeClock{now: t0}
	sched, err := Parse("*/5 * * * *")
	require.NoError(t, err)
	results := []error{errors.New("boom 1"), errors.New("boom 2"), nil, errors.New("boom 3"), errors.New("boom 4"), errors.New("boom 5"), nil}
	var calls atomic.Int32
	rec := &recorder{}
	svc := &Service{Clock: clock, Log: rec.log, Jobs: []Job{{Name: "flaky", Schedule: sched, Location: time.UTC, MaxFailures: 3,
		Run: func(context.Context) (string, error) {
			i := calls.Add(1) - 1
			return "", results[i]
		}}}}
	done := make(chan int)
	go func() { done <- svc.Run(context.Background()) }()
	for i := 0; i < 6; i++ {
		clock.step(t)
	}
	select {
	case n := <-done:
		require.Equal(t, 1, n)
	case <-time.After(10 * time.Second):
		t.Fatal("the service did not stop once its only job was disabled")
	}
	require.EqualValues(t, 6, calls.Load(), "no run after the job is disabled")
	failed := rec.kinds("failed")
	require.Len(t, failed, 5)
	require.Equal(t, []int{1, 2, 1, 2, 3}, []int{failed[0].Failures, failed[1].Failures, failed[2].Failures, failed[3].Failures, failed[4].Failures})
	disabled := rec.kinds("disabled")
	require.Len(t, disabled, 1)
	require.Contains(t, disabled[0].Detail, "3 consecutive failures")
	// Runs were at 00:05, 00:10, ... 00:30: one every five minutes.
	starts := rec.kinds("start")
	for i, e := range starts {
		require.Equal(t, t0.Add(time.Duration(i+1)*5*time.Minute), e.Time)
	}
}

// Cancelling the service interrupts the run in flight and waits for it.
func TestServiceStopInterruptsRun(t *testing.T) {
	clock := &fakeClock{now: t0}
	sched, err := Parse("@every 1s")
	require.NoError(t, err)
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	var returned atomic.Bool
	svc := &Service{Clock: clock, Log: rec.log, Jobs: []Job{{Name: "long", Schedule: sched,
		Run: func(ctx context.Context) (string, error) {
			close(started)
			<-ctx.Done()
			time.Sleep(50 * time.Millisecond) // cleaning up
			returned.Store(true)
			return "", ctx.Err()
		}}}}
	done := make(chan int)
	go func() { done <- svc.Run(ctx) }()
	clock.step(t)
	<-started
	cancel()
	<-done
	require.True(t, returned.Load(), "Run returned before the run in flight")
	require.Len(t, rec.kinds("interrupted"), 1)
	require.Empty(t, rec.kinds("failed"), "an interrupted run is not a failure")
}

// Two jobs run independently: a slow one does not delay a fast one.
func TestServiceJobsAreIndependent(t *testing.T) {
	sched, err := Parse("@every 1s")
	require.NoError(t, err)
	rec := &recorder{}
	ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond)
	defer cancel()
	var fast atomic.Int32
	svc := &Service{Clock: RealClock, Log: rec.log, Jobs: []Job{
		{Name: "slow", Schedule: sched, Run: func(ctx context.Context) (string, error) {
			<-ctx.Done()
			return "", ctx.Err()
		}},
		{Name: "fast", Schedule: sched, Run: func(context.Context) (string, error) { fast.Add(1); return "up to date", nil }},
	}}
	svc.Run(ctx)
	require.GreaterOrEqual(t, fast.Load(), int32(2))
}
