// Package chaos holds the recorded history of a fault-injection run: every
// lock operation a client issued, when it was invoked and when (and how) it
// completed, on one monotonic clock. The checkers in package check read it;
// a failing run is written out as JSON Lines so it can be re-checked offline.
package chaos

import (
	"fmt"
	"sort"
	"time"
)

// Kind is the operation a client issued.
type Kind int

// The operations of the contract's lock API. The zero value is invalid so a
// forgotten field is caught when a history is loaded.
const (
	TryLock Kind = iota + 1
	Extend
	Unlock
	GetInfo
	ForceUnlock
)

var kindNames = map[Kind]string{
	TryLock:     "try-lock",
	Extend:      "extend",
	Unlock:      "unlock",
	GetInfo:     "get-info",
	ForceUnlock: "force-unlock",
}

// Kinds lists every kind in declaration order.
func Kinds() []Kind { return []Kind{TryLock, Extend, Unlock, GetInfo, ForceUnlock} }

// String names the kind the way the REST paths do.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// MarshalText writes the kind by name, which keeps saved histories readable.
func (k Kind) MarshalText() ([]byte, error) {
	if _, ok := kindNames[k]; !ok {
		return nil, fmt.Errorf("chaos: invalid kind %d", int(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText reads a kind written by MarshalText.
func (k *Kind) UnmarshalText(b []byte) error {
	for kind, name := range kindNames {
		if name == string(b) {
			*k = kind
			return nil
		}
	}
	return fmt.Errorf("chaos: unknown kind %q", b)
}

// Durability values, as on the wire.
const (
	Ephemeral  = 0
	Persistent = 1
)

// Reply types, as on the wire (pkg/wire).
const (
	TypeLocked           = 0
	TypeBusy             = 1
	TypeExtended         = 2
	TypeUnlocked         = 3
	TypeGot              = 4
	TypeErrored          = 99
	TypeInvalidInput     = 100
	TypeMustRetry        = 101
	TypeLockDoesNotExist = 102
	TypeInvalidOwner     = 103
)

// TypeName names a reply type for messages.
func TypeName(t int) string {
	switch t {
	case TypeLocked:
		return "Locked"
	case TypeBusy:
		return "Busy"
	case TypeExtended:
		return "Extended"
	case TypeUnlocked:
		return "Unlocked"
	case TypeGot:
		return "Got"
	case TypeErrored:
		return "Errored"
	case TypeInvalidInput:
		return "InvalidInput"
	case TypeMustRetry:
		return "MustRetry"
	case TypeLockDoesNotExist:
		return "LockDoesNotExist"
	case TypeInvalidOwner:
		return "InvalidOwner"
	}
	return fmt.Sprintf("type(%d)", t)
}

// Op is one operation of a history: what a client asked, when, and what it
// was told.
type Op struct {
	// ID is the operation's index in its history; Client is the issuing
	// client (a goroutine with one operation in flight at a time).
	ID     int  `json:"id"`
	Client int  `json:"client"`
	Kind   Kind `json:"kind"`
	// Resource and Durability name the lock (1 persistent, 0 ephemeral).
	Resource   string `json:"resource"`
	Durability int    `json:"durability"`
	// Owner is the owner the request named (empty for get-info and
	// force-unlock).
	Owner string `json:"owner,omitempty"`
	// TTL is the lease asked for (try-lock, extend); Wait the try-lock's
	// waitMs, 0 if none.
	TTL  time.Duration `json:"ttlNs,omitempty"`
	Wait time.Duration `json:"waitNs,omitempty"`
	// Invoke and Complete are measured since the run started on one
	// monotonic clock. For an indefinite op Complete is when the client
	// gave up; checkers treat its effect as possible at any later time.
	Invoke   time.Duration `json:"invokeNs"`
	Complete time.Duration `json:"completeNs"`
	// Definite is false when the outcome is unknown: the request timed
	// out, failed in transport, or was answered 101 (MustRetry).
	Definite bool `json:"definite"`
	// Type is the reply's wire type (meaningful when Definite; a 101 is
	// kept here for the record).
	Type int `json:"type"`
	// Token is the fencing token of a Locked, Extended or Got reply.
	Token int64 `json:"token,omitempty"`
	// Holder is the owner a Busy or Got reply named.
	Holder string `json:"holder,omitempty"`
	// Node is the reply's servedFrom.
	Node string `json:"node,omitempty"`
	// Err is the error text of an indefinite op.
	Err string `json:"err,omitempty"`
}

// Is reports whether the op has a definite reply of type t.
func (o Op) Is(t int) bool { return o.Definite && o.Type == t }

// Key names the lock the op is about.
func (o Op) Key() LockKey { return LockKey{Resource: o.Resource, Durability: o.Durability} }

// LockKey identifies a lock: the contract's (resource, durability).
type LockKey struct {
	Resource   string
	Durability int
}

func (k LockKey) String() string {
	if k.Durability == Ephemeral {
		return fmt.Sprintf("%q (ephemeral)", k.Resource)
	}
	return fmt.Sprintf("%q", k.Resource)
}

// String renders the op on one line for anomaly reports, e.g.
// `#12 c3 try-lock "r1" owner=a ttl=100ms [1.2s, 1.25s] → Locked f7 @n2`.
func (o Op) String() string {
	s := fmt.Sprintf("#%d c%d %s %s", o.ID, o.Client, o.Kind, o.Key())
	if o.Owner != "" {
		s += " owner=" + o.Owner
	}
	if o.TTL != 0 {
		s += " ttl=" + o.TTL.String()
	}
	if o.Wait != 0 {
		s += " wait=" + o.Wait.String()
	}
	s += fmt.Sprintf(" [%v, %v] → %s", o.Invoke, o.Complete, o.Outcome())
	if o.Node != "" {
		s += " @" + o.Node
	}
	return s
}

// Outcome renders the reply alone, e.g. "Locked f7" or "unknown (timeout)".
func (o Op) Outcome() string {
	if !o.Definite {
		if o.Err != "" {
			return "unknown (" + o.Err + ")"
		}
		return "unknown"
	}
	s := TypeName(o.Type)
	switch o.Type {
	case TypeLocked, TypeExtended:
		s += fmt.Sprintf(" f%d", o.Token)
	case TypeGot:
		s += fmt.Sprintf(" %s f%d", o.Holder, o.Token)
	case TypeBusy:
		s += " by " + o.Holder
	}
	return s
}

// History is a recorded run.
type History struct {
	Ops []Op
}

// Filter returns the ops for which keep is true, in order.
func (h History) Filter(keep func(Op) bool) []Op {
	var out []Op
	for _, o := range h.Ops {
		if keep(o) {
			out = append(out, o)
		}
	}
	return out
}

// ByLock splits ops by lock, each group in the original order. Keys are
// returned sorted so reports are stable.
func ByLock(ops []Op) ([]LockKey, map[LockKey][]Op) {
	groups := make(map[LockKey][]Op)
	for _, o := range ops {
		groups[o.Key()] = append(groups[o.Key()], o)
	}
	keys := make([]LockKey, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Durability != keys[j].Durability {
			return keys[i].Durability > keys[j].Durability
		}
		return keys[i].Resource < keys[j].Resource
	})
	return keys, groups
}

// ByLockOf returns the ops of one lock, in order.
func ByLockOf(ops []Op, k LockKey) []Op {
	var out []Op
	for _, o := range ops {
		if o.Key() == k {
			out = append(out, o)
		}
	}
	return out
}

// Validate checks the invariants every recorded op must satisfy, so a
// history edited by hand or loaded from disk fails loudly instead of
// confusing a checker.
func (h History) Validate() error {
	for i, o := range h.Ops {
		switch {
		case o.ID != i:
			return fmt.Errorf("chaos: op %d has id %d", i, o.ID)
		case kindNames[o.Kind] == "":
			return fmt.Errorf("chaos: op %d: invalid kind %d", i, int(o.Kind))
		case o.Resource == "":
			return fmt.Errorf("chaos: op %d: empty resource", i)
		case o.Durability != Persistent && o.Durability != Ephemeral:
			return fmt.Errorf("chaos: op %d: durability %d", i, o.Durability)
		case o.Complete < o.Invoke:
			return fmt.Errorf("chaos: op %d completes at %v before its invoke at %v", i, o.Complete, o.Invoke)
		case o.Invoke < 0:
			return fmt.Errorf("chaos: op %d: negative invoke time %v", i, o.Invoke)
		}
		switch o.Kind {
		case TryLock, Extend, Unlock:
			if o.Owner == "" {
				return fmt.Errorf("chaos: op %d: %s without an owner", i, o.Kind)
			}
		}
		switch o.Kind {
		case TryLock, Extend:
			if o.TTL <= 0 {
				return fmt.Errorf("chaos: op %d: %s with ttl %v", i, o.Kind, o.TTL)
			}
		}
	}
	return nil
}
