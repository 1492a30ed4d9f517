package partition

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/hashicorp/raft"

	"github.com/kahuna-go/kahuna/pkg/fsm"
)

// fsmAdapter connects the lock state machine to Raft. Each Raft command
// entry is one batch; the response to the entry is the batch's results.
type fsmAdapter struct {
	machine *fsm.Machine
	// onRelease is told about every lock an unlock released, so that a
	// leader can wake the lock's waiters.
	onRelease func(resource string)
	// onApplied is told of every applied batch, with its results.
	onApplied func(term, seq uint64, res []fsm.Result)
	// onConfig is told of every committed configuration entry.
	onConfig func(index uint64, c raft.Configuration)
	log      *slog.Logger
}

var (
	_ raft.BatchingFSM = (*fsmAdapter)(nil)
)

func (a *fsmAdapter) Apply(l *raft.Log) any {
	return a.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in order. A corrupt entry gets an
// error response and changes nothing; every replica decodes the same bytes,
// so they all skip it alike.
func (a *fsmAdapter) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	for i, l := range logs {
		if l.Type == raft.LogConfiguration && a.onConfig != nil {
			a.onConfig(l.Index, raft.DecodeConfiguration(l.Data))
		}
		if l.Type != raft.LogCommand {
			continue
		}
		b, err := fsm.DecodeBatch(l.Data)
		if err != nil {
			a.log.Error("skipping undecodable log entry", "index", l.Index, "err", err)
			out[i] = fmt.Errorf("partition: log entry %d: %w", l.Index, err)
			continue
		}
		res := a.machine.Apply(b)
		for j := range b.Commands {
			c := &b.Commands[j]
			if res[j].Outcome == fsm.Unlocked && (c.Op == fsm.OpUnlock || c.Op == fsm.OpForceUnlock) {
				a.onRelease(c.Resource)
			}
		}
		out[i] = res
		a.onApplied(b.Term, b.Seq, res)
	}
	return out
}

func (a *fsmAdapter) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{snap: a.machine.Snapshot()}, nil
}

func (a *fsmAdapter) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := a.machine.Restore(rc); err != nil {
		return fmt.Errorf("partition: restore snapshot: %w", err)
	}
	return nil
}

type fsmSnapshot struct {
	snap *fsm.Snapshot
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.snap.WriteTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("partition: write snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
