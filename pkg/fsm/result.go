package fsm

// Outcome is what a command did.
type Outcome uint8

// Outcomes of lock commands and reads.
const (
	// Locked: the lock was granted (new token) or re-granted to its owner
	// (same token, see Result.Fresh).
	Locked Outcome = iota + 1
	// Busy: another owner holds a live lock; Result names the holder.
	Busy
	// Extended: the owner's lease was moved.
	Extended
	// Unlocked: the lock was released.
	Unlocked
	// Got: a read found a live lock.
	Got
	// NotFound: no live lock (missing, released or expired).
	NotFound
	// NotOwner: the lock is held by someone else.
	NotOwner
	// Invalid: the command was malformed; nothing changed.
	Invalid
	// NoTokens: no fencing token could be issued right now (an ephemeral
	// token block ran out); nothing changed and a retry will succeed.
	NoTokens
	// Done: an internal command (expire, promote, reserve) ran.
	Done
)

func (o Outcome) String() string {
	switch o {
	case Locked:
		return "locked"
	case Busy:
		return "busy"
	case Extended:
		return "extended"
	case Unlocked:
		return "unlocked"
	case Got:
		return "got"
	case NotFound:
		return "not-found"
	case NotOwner:
		return "not-owner"
	case Invalid:
		return "invalid"
	case NoTokens:
		return "no-tokens"
	case Done:
		return "done"
	default:
		return "unknown"
	}
}

// Result is the outcome of one command or read.
type Result struct {
	Outcome Outcome
	// Token is the lock's fencing token (Locked, Extended, Got, Busy), or the
	// first reserved token for OpReserveTokens.
	Token uint64
	// Owner is the holder (Got, Busy, Locked).
	Owner string
	// AcquiredAt and ExpiresAt are unix milliseconds of the lease clock.
	AcquiredAt int64
	ExpiresAt  int64
	// ExpiresIn is the lease time left, in milliseconds, when the command
	// ran.
	ExpiresIn int64
	// Fresh is true when Locked issued a new token rather than repeating the
	// owner's existing grant.
	Fresh bool
	// Count is how many entries an expire dropped or how many tokens a
	// reservation holds.
	Count uint64
}
