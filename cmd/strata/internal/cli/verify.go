package cli

import (
	"context"
	"time"
)

// strata verify: the acks=ALL guarantee checked from the outside. verify
// produce writes every record's outcome to a JSONL log; verify check reads
// every replica of every partition with the internal ReadReplica RPC and
// compares (internal/verify holds the analysis); verify run does both.

func runVerifyRun(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	var po produceOpts
	po.register(fs)
	var co checkOpts
	co.register(fs, false, time.Minute)
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	s, err := verifyProduce(ctx, e, &po)
	if err != nil {
		return err
	}
	// With --json the check's report is the one JSON document on stdout.
	pe := e
	if e.g.json {
		pe = &env{io: IO{Out: e.io.Err}, g: &globals{}, cmd: e.cmd}
	}
	if err := printProduceSummary(pe, s); err != nil {
		return err
	}
	if s.Interrupted {
		return ctx.Err()
	}
	co.topic, co.logs = po.topic, multiFlag{po.out}
	return verifyCheck(ctx, e, &co)
}
