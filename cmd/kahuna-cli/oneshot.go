package main

import (
	"context"

	"github.com/kahuna-go/kahuna/pkg/client"
)

// oneShot performs the operation of a one-shot flag, prints its outcome and
// returns the exit code.
func oneShot(c *client.Client, o *options, std stdio) int {
	ctx, stop := interruptible(context.Background())
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout+o.wait)
	defer cancel()

	t := o.target()
	var out outcome
	switch o.op {
	case opLock:
		owner := o.owner
		if owner == "" {
			owner = client.NewOwner()
		}
		out, _ = doLock(ctx, c, t, owner, o.expires, o.wait)
	case opExtend:
		out = doExtend(ctx, c, t, o.owner, o.expires)
	case opUnlock:
		out = doUnlock(ctx, c, t, o.owner)
	case opGet:
		out = doGet(ctx, c, t)
	case opList:
		out = doList(ctx, c, o.prefix, o.durability)
	case opForceUnlock:
		out = doForceUnlock(ctx, c, t)
	case opCluster:
		out = doCluster(ctx, c)
	case opRemoveNode:
		out = doRemoveNode(ctx, c, o.node)
	}
	if sig, ok := caughtSignal(ctx); ok && out.exitCode() == exitUnavailable {
		r := interruptedReport(t, signalExitCode(sig))
		if o.op == opCluster || o.op == opRemoveNode {
			r = noLock(r)
		}
		out = r
	}
	printer{out: std.out, errOut: std.err, json: o.json}.print(out)
	return out.exitCode()
}
