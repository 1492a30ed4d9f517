package check

import (
	"fmt"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// allowed lists the reply types the contract permits for each kind of
// operation. Errored (99) and InvalidInput (100) are never right for the
// well-formed requests a workload sends; MustRetry (101) is recorded as an
// indefinite outcome and never reaches this table.
var allowed = map[chaos.Kind][]int{
	chaos.TryLock:     {chaos.TypeLocked, chaos.TypeBusy},
	chaos.Extend:      {chaos.TypeExtended, chaos.TypeLockDoesNotExist, chaos.TypeInvalidOwner},
	chaos.Unlock:      {chaos.TypeUnlocked, chaos.TypeLockDoesNotExist, chaos.TypeInvalidOwner},
	chaos.GetInfo:     {chaos.TypeGot, chaos.TypeLockDoesNotExist},
	chaos.ForceUnlock: {chaos.TypeUnlocked, chaos.TypeLockDoesNotExist},
}

// replyProblem says what is wrong with a definite reply on its own, or "".
func replyProblem(o chaos.Op) string {
	if !o.Definite {
		return ""
	}
	ok := false
	for _, t := range allowed[o.Kind] {
		ok = ok || t == o.Type
	}
	if !ok {
		msg := fmt.Sprintf("%s answered %s", o.Kind, chaos.TypeName(o.Type))
		if o.Err != "" {
			msg += ": " + o.Err
		}
		return msg
	}
	switch o.Type {
	case chaos.TypeLocked, chaos.TypeExtended, chaos.TypeGot:
		if o.Token < 0 {
			return fmt.Sprintf("negative fencing token %d", o.Token)
		}
	}
	switch o.Type {
	case chaos.TypeBusy, chaos.TypeGot:
		if o.Holder == "" {
			return fmt.Sprintf("%s reply names no holder", chaos.TypeName(o.Type))
		}
	}
	return ""
}

// Replies reports every definite reply the contract does not allow for its
// operation at all (99, 100, a type of another operation, a negative token,
// a Busy or Got without a holder), whatever the state. These are bugs in
// themselves; the other checkers treat such ops as having an unknown outcome
// so one bad reply does not hide or distort the rest of the history.
func Replies(h chaos.History) []Anomaly {
	var out []Anomaly
	for _, o := range h.Ops {
		if p := replyProblem(o); p != "" {
			out = append(out, Anomaly{Checker: NameReplies, Lock: o.Key(), Message: p, Ops: []chaos.Op{o}})
		}
	}
	return out
}

// sanitize returns the ops with every reply Replies objects to turned into
// an unknown outcome, for the checkers that reason about state.
func sanitize(ops []chaos.Op) []chaos.Op {
	out := make([]chaos.Op, len(ops))
	for i, o := range ops {
		if replyProblem(o) != "" {
			o.Definite = false
			o.Err = "unexpected reply " + o.Outcome()
		}
		out[i] = o
	}
	return out
}
