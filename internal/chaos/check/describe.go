package check

import (
	"fmt"
	"time"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

// describeOperation is the label of an op in porcupine's visualization,
// e.g. "#12 try-lock(a, 100ms) → Locked f7".
func describeOperation(req request, rep reply) string {
	s := fmt.Sprintf("#%d %s(", req.ID, req.Kind)
	switch req.Kind {
	case chaos.TryLock:
		s += fmt.Sprintf("%s, %v", req.Owner, req.TTL)
		if req.Wait > 0 {
			s += fmt.Sprintf(", wait %v", req.Wait)
		}
	case chaos.Extend:
		s += fmt.Sprintf("%s, %v", req.Owner, req.TTL)
	case chaos.Unlock:
		s += req.Owner
	}
	s += ") → "
	if !rep.Definite {
		return s + "?"
	}
	switch rep.Type {
	case chaos.TypeLocked, chaos.TypeExtended:
		return s + fmt.Sprintf("%s f%d", chaos.TypeName(rep.Type), rep.Token)
	case chaos.TypeGot:
		return s + fmt.Sprintf("Got %s f%d", rep.Holder, rep.Token)
	case chaos.TypeBusy:
		return s + "Busy " + rep.Holder
	}
	return s + chaos.TypeName(rep.Type)
}

// describeState is one model state, e.g. "a f7 live ≥ 1.25s (last f7)" or
// "free (last f7)".
func describeState(s lockState) string {
	last := fmt.Sprintf("last f%d", s.Last)
	if s.Last < 0 {
		last = "no token yet"
	}
	if s.Now > 0 {
		last += fmt.Sprintf(", now ≥ %v", s.Now.Round(time.Microsecond))
	}
	if !s.Held {
		return fmt.Sprintf("free (%s)", last)
	}
	token := fmt.Sprintf("f%d", s.Token)
	if !s.TokenKnown {
		token = fmt.Sprintf("f?>%d", s.Floor)
	}
	if s.Expired {
		return fmt.Sprintf("%s %s expired (%s)", s.Owner, token, last)
	}
	if s.MinEnd == 0 {
		return fmt.Sprintf("%s %s live or over (%s)", s.Owner, token, last)
	}
	return fmt.Sprintf("%s %s live until ≥ %v (%s)", s.Owner, token, s.MinEnd.Round(time.Microsecond), last)
}
