package cron

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Clock is the time source of a Service; tests pass a fake one.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// RealClock is the wall clock.
var RealClock Clock = realClock{}

// Job is one scheduled pipeline.
type Job struct {
	Name     string
	Schedule *Schedule
	Location *time.Location // nil: time.Local
	// MaxFailures consecutive failed runs disable the job; 0 never does.
	MaxFailures int
	// Run does one run. A nil error is a success; detail is logged with it
	// (a build id, "up to date").
	Run func(ctx context.Context) (detail string, err error)
}

// Event is what a Service reports: one per run started, finished, skipped
// ticks, and disabling.
type Event struct {
	Time     time.Time
	Job      string
	Kind     string // "scheduled", "start", "ok", "failed", "interrupted", "skipped", "disabled", "stopped"
	Detail   string // the run's detail, the error, or why
	Run      int    // the run's number, from 1, for start/ok/failed/interrupted
	Duration time.Duration
	Failures int       // consecutive failures so far, for failed and disabled
	Next     time.Time // for scheduled and ok/failed: when the job runs next
	Skipped  int       // for skipped: how many ticks were missed
}

// Service runs jobs on their schedules: each job in a goroutine of its own,
// one run at a time per job. A run that outlasts the interval skips the
// ticks it covered (reported as one "skipped" event); a job whose runs fail
// MaxFailures times in a row is disabled for the life of the service.
type Service struct {
	Jobs  []Job
	Clock Clock
	Log   func(Event) // called from the jobs' goroutines, one call at a time
	mu    sync.Mutex
}

func (s *Service) emit(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Log != nil {
		s.Log(e)
	}
}

// Run runs every job until ctx is cancelled, and returns once every run in
// flight has returned (a run is handed ctx, so cancelling it interrupts the
// run). It also returns, with the number of disabled jobs, when every job is
// disabled.
func (s *Service) Run(ctx context.Context) (disabled int) {
	if s.Clock == nil {
		s.Clock = RealClock
	}
	var wg sync.WaitGroup
	var dmu sync.Mutex
	for _, j := range s.Jobs {
		wg.Add(1)
		go func(j Job) {
			defer wg.Done()
			if !s.runJob(ctx, j) {
				dmu.Lock()
				disabled++
				dmu.Unlock()
			}
		}(j)
	}
	wg.Wait()
	return disabled
}

// next is the first firing of j after t.
func (j Job) next(t time.Time) time.Time {
	loc := j.Location
	if loc == nil {
		loc = time.Local
	}
	return j.Schedule.Next(t.In(loc))
}

// runJob returns false when the job was disabled, true when ctx ended it.
func (s *Service) runJob(ctx context.Context, j Job) bool {
	next := j.next(s.Clock.Now())
	if next.IsZero() {
		s.emit(Event{Time: s.Clock.Now(), Job: j.Name, Kind: "disabled", Detail: "the schedule never fires"})
		return false
	}
	s.emit(Event{Time: s.Clock.Now(), Job: j.Name, Kind: "scheduled", Next: next})
	failures, runs := 0, 0
	for {
		// Timers run on the monotonic clock; if the wall clock was set back
		// meanwhile, wake up early and wait for the rest.
		for now := s.Clock.Now(); now.Before(next) && ctx.Err() == nil; now = s.Clock.Now() {
			select {
			case <-ctx.Done():
			case <-s.Clock.After(next.Sub(now)):
			}
		}
		if ctx.Err() != nil {
			s.emit(Event{Time: s.Clock.Now(), Job: j.Name, Kind: "stopped"})
			return true
		}
		runs++
		start := s.Clock.Now()
		s.emit(Event{Time: start, Job: j.Name, Kind: "start", Run: runs})
		detail, err := j.Run(ctx)
		end := s.Clock.Now()
		took := end.Sub(start)

		// The ticks the run covered are skipped, not queued.
		after := next
		if end.After(after) {
			after = end
		}
		skipped := 0
		for t := j.next(next); !t.IsZero() && !t.After(end) && skipped < 1_000_000; t = j.next(t) {
			skipped++
		}
		next = j.next(after)

		switch {
		case err != nil && ctx.Err() != nil:
			s.emit(Event{Time: end, Job: j.Name, Kind: "interrupted", Run: runs, Duration: took, Detail: err.Error()})
			s.emit(Event{Time: end, Job: j.Name, Kind: "stopped"})
			return true
		case err != nil:
			failures++
			s.emit(Event{Time: end, Job: j.Name, Kind: "failed", Run: runs, Duration: took, Detail: err.Error(), Failures: failures, Next: next})
			if j.MaxFailures > 0 && failures >= j.MaxFailures {
				s.emit(Event{Time: end, Job: j.Name, Kind: "disabled", Failures: failures,
					Detail: fmt.Sprintf("%d consecutive failures (max_failures = %d); restart the service to enable it again", failures, j.MaxFailures)})
				return false
			}
		default:
			failures = 0
			s.emit(Event{Time: end, Job: j.Name, Kind: "ok", Run: runs, Duration: took, Detail: detail, Next: next})
		}
		if skipped > 0 {
			s.emit(Event{Time: end, Job: j.Name, Kind: "skipped", Skipped: skipped,
				Detail: fmt.Sprintf("the run took %s and covered %d scheduled time(s), which are not run", took.Round(time.Second), skipped)})
		}
		if next.IsZero() {
			s.emit(Event{Time: end, Job: j.Name, Kind: "disabled", Detail: "the schedule never fires again"})
			return false
		}
	}
}
