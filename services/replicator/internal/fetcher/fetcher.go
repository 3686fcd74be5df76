package fetcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/telemetry"
)

// fetcher follows one partition for one assignment, from one goroutine.
type fetcher struct {
	lg      *zap.Logger
	a       Assignment
	localID int32
	local   Local
	leaders Dialer
	applied *Applied
	opts    Options
}

func (m *Manager) newFetcher(a Assignment) *fetcher {
	return &fetcher{
		lg: m.lg.With(zap.String("topic", a.Topic), zap.Int32("partition", a.Partition),
			zap.Int32("leader", a.LeaderID), zap.Int32("epoch", a.LeaderEpoch)),
		a: a, localID: m.localID, local: m.local, leaders: m.leaders, applied: m.applied, opts: m.opts,
	}
}

// run makes attempts until ctx is done. Each attempt checks that the local
// broker follows in the fetcher's epoch, resynchronizes the local log with
// the leader's, and streams; after a failure it backs off, doubling the
// delay while attempts make no progress. Until the first progress the delay
// starts at FirstBackoff: see Options. The applier telling the local
// broker this partition's state again ends the delay at once: that is the
// local broker back from a restart (or a crash), which had forgotten it;
// the fetcher resumes with it instead of up to MaxBackoff later.
func (f *fetcher) run(ctx context.Context) {
	backoff := f.opts.FirstBackoff
	for {
		var reapplied <-chan struct{} // nil (never) without the tracker
		if f.applied != nil {
			reapplied = f.applied.reapplied(key{f.a.Topic, f.a.Partition})
		}
		progressed, err := f.attempt(ctx)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			backoff = f.opts.MinBackoff
		}
		f.report(err)
		// Jitter spreads the retries of the many fetchers that one leader
		// failure stops at once.
		d := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-reapplied:
			t.Stop()
		}
		backoff = min(2*backoff, f.opts.MaxBackoff)
	}
}

// report logs and counts a failed attempt. Waiting for the local broker or
// for the leader to reach the epoch is routine after every leader change.
func (f *fetcher) report(err error) {
	step := "other"
	var se *StepError
	if errors.As(err, &se) {
		step = se.Step
	}
	code := reason(err)
	f.opts.Observer.FetchError(step, code)
	switch {
	case errors.Is(err, ErrLocalNotReady):
		f.lg.Debug("local broker not following in this epoch yet", zap.Error(err))
	case code == codes.FailedPrecondition.String() || code == codes.Unavailable.String() || code == codes.NotFound.String() ||
		errors.Is(err, ErrStreamClosed):
		f.lg.Info("fetch attempt failed; retrying", zap.String("step", step), zap.Error(err))
	default:
		f.lg.Warn("fetch attempt failed; retrying", zap.String("step", step), zap.Error(err))
	}
}

// reason names an error for metrics: its gRPC code, or which of this
// package's errors it is.
func reason(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{
		{ErrLocalNotReady, "local_not_ready"}, {ErrStaleResponse, "stale_response"},
		{ErrOffsetMismatch, "offset_mismatch"}, {ErrIdle, "idle"}, {ErrStreamClosed, "stream_closed"},
		{ErrBadAnswer, "bad_answer"}, {ErrConnsClosed, "closed"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return status.Code(err).String()
}

// attempt is one try: it reports whether the local log moved (records or a
// high watermark appended, or a truncation), which resets the backoff.
func (f *fetcher) attempt(ctx context.Context) (progressed bool, err error) {
	st, err := f.localStatus(ctx, true)
	if err != nil {
		return false, err
	}
	leader, err := f.leaders.Leader(f.a.LeaderAddr)
	if err != nil {
		return false, stepErr("dial", err)
	}
	leo, truncated, err := f.resync(ctx, leader, st)
	if err != nil {
		return truncated, err
	}
	progressed, err = f.stream(ctx, leader, leo)
	return truncated || progressed, err
}

// localStatus returns the local broker's view of the partition once it
// follows in the fetcher's epoch. With wait it first waits for the applier
// to have told the broker that epoch: the fetcher starts on the same
// metadata change as the applier's call, and must not write before it.
func (f *fetcher) localStatus(ctx context.Context, wait bool) (*stratav1.PartitionStatusResponse, error) {
	if wait && f.applied != nil {
		if err := f.applied.wait(ctx, key{f.a.Topic, f.a.Partition}, f.a.LeaderEpoch); err != nil {
			return nil, err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, f.opts.CallTimeout)
	defer cancel()
	st, err := f.local.PartitionStatus(cctx, &stratav1.PartitionStatusRequest{Topic: f.a.Topic, Partition: f.a.Partition})
	if err != nil {
		return nil, stepErr("local_status", err)
	}
	if st.GetRole() != stratav1.Role_ROLE_FOLLOWER || st.GetLeaderEpoch() != f.a.LeaderEpoch {
		return nil, stepErr("local_status", fmt.Errorf("%w: the broker is %s in epoch %d, the fetcher is for epoch %d",
			ErrLocalNotReady, st.GetRole(), st.GetLeaderEpoch(), f.a.LeaderEpoch))
	}
	return st, nil
}

// stream fetches from leo until something fails. The leader streams ahead
// of the acknowledgements, so between two Recvs this waits only for the
// local Append: the next responses are already in flight meanwhile. Each
// response is decoded with rawCodec: its frames stay in the buffers they
// arrived in and go on to the local broker from there.
func (f *fetcher) stream(ctx context.Context, leader Leader, leo int64) (progressed bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The idle timer runs only while waiting for the leader (a slow local
	// append is not the leader's silence); firing, it ends the stream.
	idle := time.AfterFunc(f.opts.IdleTimeout, cancel)
	defer idle.Stop()

	stream, err := leader.Fetch(sctx, rawCallOption)
	if err != nil {
		return false, stepErr("fetch", err)
	}
	if err := send(stream, f.fetchRequest(leo)); err != nil {
		return f.fetchFailed(ctx, sctx, leo, err)
	}
	hw := int64(-1) // the high watermark last given to the local broker
	resp := new(rawFetchResponse)
	defer resp.release()
	for {
		idle.Reset(f.opts.IdleTimeout)
		waited := time.Now()
		err := stream.RecvMsg(resp)
		idle.Stop()
		if err != nil {
			fixed, err := f.fetchFailed(ctx, sctx, leo, err)
			return progressed || fixed, err
		}
		if resp.GetLeaderEpoch() != f.a.LeaderEpoch {
			return progressed, stepErr("fetch", fmt.Errorf("%w: epoch %d, following %d", ErrStaleResponse, resp.GetLeaderEpoch(), f.a.LeaderEpoch))
		}
		if resp.GetBaseOffset() != leo {
			return progressed, stepErr("fetch", fmt.Errorf("%w: response at %d, local log end %d", ErrOffsetMismatch, resp.GetBaseOffset(), leo))
		}
		frames := resp.framesLen()
		appended := false
		actx, span := f.traceFetch(ctx, resp, waited)
		// A heartbeat needs a local call only to pass on a new high
		// watermark; otherwise the position is acknowledged as it stands.
		if frames > 0 || resp.GetHighWatermark() != hw {
			end, err := f.append(actx, resp)
			if err != nil {
				endSpan(span, err)
				return progressed, stepErr("append", err)
			}
			if end < leo || (frames > 0 && end == leo) {
				err := fmt.Errorf("%w: log end %d after appending at %d", ErrBadAnswer, end, leo)
				endSpan(span, err)
				return progressed, stepErr("append", err)
			}
			if span != nil {
				span.SetAttributes(attrRecords.Int64(end-leo), attrLogEnd.Int64(end))
			}
			leo, hw, appended = end, resp.GetHighWatermark(), true
			progressed = true
		}
		resp.release() // the buffers go back to gRPC's pool: nothing holds them now
		endSpan(span, nil)
		f.opts.Observer.Fetched(f.a.Topic, f.a.Partition, frames, appended, max(0, resp.GetLogEndOffset()-leo))
		req := f.fetchRequest(leo)
		if span != nil {
			// The leader's span for the HW advance this report causes.
			req.TraceParent = telemetry.TraceParent(span.SpanContext())
		}
		if err := send(stream, req); err != nil {
			fixed, err := f.fetchFailed(ctx, sctx, leo, err)
			return progressed || fixed, err
		}
	}
}

// fetchRequest is a new message every time: gRPC may read a sent message
// after Send returns.
func (f *fetcher) fetchRequest(leo int64) *stratav1.FetchRequest {
	return &stratav1.FetchRequest{Topic: f.a.Topic, Partition: f.a.Partition, ReplicaId: f.localID,
		FetchOffset: leo, LeaderEpoch: f.a.LeaderEpoch, MaxBytes: f.opts.MaxBytes}
}

// send sends req; when the stream has already ended (io.EOF) it returns
// the stream's status, which only Recv reports.
func send(stream grpc.BidiStreamingClient[stratav1.FetchRequest, stratav1.FetchResponse], req *stratav1.FetchRequest) error {
	err := stream.Send(req)
	if !errors.Is(err, io.EOF) {
		return err
	}
	for {
		if _, err := stream.Recv(); err != nil {
			return err
		}
	}
}

// fetchFailed classifies a failed stream. An offset outside the leader's
// log is repaired here (reporting fixed) so that the next attempt fetches
// from inside it.
func (f *fetcher) fetchFailed(ctx, sctx context.Context, leo int64, err error) (fixed bool, _ error) {
	switch {
	case ctx.Err() != nil:
		return false, ctx.Err()
	case sctx.Err() != nil:
		return false, stepErr("fetch", ErrIdle)
	case errors.Is(err, io.EOF):
		return false, stepErr("fetch", ErrStreamClosed)
	case status.Code(err) == codes.OutOfRange:
		rng := offsetRange(err)
		if rng == nil {
			break
		}
		fixed, ferr := f.fixRange(ctx, leo, rng)
		if ferr != nil {
			return false, ferr
		}
		return fixed, stepErr("fetch", err)
	}
	return false, stepErr("fetch", err)
}

// fixRange moves the local log end inside the leader's [start, end] after
// an OutOfRange. Below the start, the records this follower lacks are gone
// from the leader (retention): nothing here can be continued, so the log
// restarts empty at the leader's start. Past the end, this follower holds
// records the leader never had that resync could not see (no common
// epoch, or an unclean election): they go.
func (f *fetcher) fixRange(ctx context.Context, leo int64, rng *stratav1.OffsetRange) (fixed bool, err error) {
	switch {
	case leo < rng.GetLogStartOffset():
		_, err = f.truncate(ctx, rng.GetLogStartOffset(), true)
	case leo > rng.GetEndOffset():
		_, err = f.truncate(ctx, rng.GetEndOffset(), false)
	default:
		return false, nil // the range holds leo: nothing here to repair
	}
	return err == nil, err
}

func offsetRange(err error) *stratav1.OffsetRange {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if r, ok := d.(*stratav1.OffsetRange); ok {
			return r
		}
	}
	return nil
}

// append writes one response into the local broker and returns its log
// end offset. Frames go as fetched: the broker checks that they start at
// its log end, so a retried or duplicated append cannot double records.
func (f *fetcher) append(ctx context.Context, resp *rawFetchResponse) (int64, error) {
	cctx, cancel := context.WithTimeout(ctx, f.opts.CallTimeout)
	defer cancel()
	return f.local.Append(cctx, &LocalAppend{Topic: f.a.Topic, Partition: f.a.Partition,
		LeaderEpoch: f.a.LeaderEpoch, RecordsEpoch: resp.GetRecordsEpoch(), Frames: resp.frames,
		LeaderHighWatermark: resp.GetHighWatermark(), TraceParent: appendTraceParent(ctx)})
}

// truncate removes local records at and after offset (reset: empties the
// log and restarts it at offset) and returns the new log end offset.
func (f *fetcher) truncate(ctx context.Context, offset int64, reset bool) (int64, error) {
	cctx, cancel := context.WithTimeout(ctx, f.opts.CallTimeout)
	defer cancel()
	tr, err := f.local.Truncate(cctx, &stratav1.TruncateRequest{Topic: f.a.Topic, Partition: f.a.Partition,
		Offset: offset, LeaderEpoch: f.a.LeaderEpoch, Reset_: reset})
	if err != nil {
		return 0, stepErr("truncate", err)
	}
	f.lg.Info("truncated the local log", zap.Int64("offset", offset), zap.Bool("reset", reset),
		zap.Int64("log_end_offset", tr.GetLogEndOffset()))
	return tr.GetLogEndOffset(), nil
}
