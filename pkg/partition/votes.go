package partition

import (
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/kahuna-go/kahuna/pkg/transport"
)

// voteRelay is the partition's Raft transport with one correction on the
// way in: a vote or pre-vote request from a server that is not a voter in
// this node's latest configuration is judged by Raft's own rules (term,
// log at least as new as ours, no current leader) instead of being refused.
//
// hashicorp/raft v1.7 refuses every (pre-)vote request from a server that
// is not a voter in the receiver's latest configuration. A voter that
// missed the addition or promotion of a new node then refuses that node's
// votes for good, and a partition can be left without a leader although a
// quorum of voters is alive: the new node holds the newest entries, so the
// others refuse it their votes by the log rule, while the voter that
// missed its promotion refuses it for its configuration
// (TestElectionAfterAPromotionALaggingVoterMissed). Voting is safe whatever
// the receiver's configuration says, as the Raft thesis has it: the
// candidate counts votes by its own configuration, and it only gets our
// vote with a log at least as new as ours, which holds every configuration
// entry we have. A removed or demoted server lacks the entry that removed
// or demoted it, so the log rule still refuses it; and a pre-vote it fails
// raises no term.
type voteRelay struct {
	transport.RaftTransport
	self   raft.ServerID
	latest atomic.Pointer[func() raft.Configuration]
	ch     chan raft.RPC
	done   chan struct{}
	once   sync.Once
}

func newVoteRelay(t transport.RaftTransport, self raft.ServerID) *voteRelay {
	r := &voteRelay{RaftTransport: t, self: self, ch: make(chan raft.RPC), done: make(chan struct{})}
	go r.run()
	return r
}

// watch gives the relay the configuration to judge by once Raft runs;
// until then requests pass unchanged.
func (r *voteRelay) watch(latest func() raft.Configuration) { r.latest.Store(&latest) }

// Consumer is where Raft reads requests.
func (r *voteRelay) Consumer() <-chan raft.RPC { return r.ch }

// Close stops the relay and the transport.
func (r *voteRelay) Close() error {
	r.once.Do(func() { close(r.done) })
	return r.NetworkTransport.Close()
}

func (r *voteRelay) run() {
	in := r.NetworkTransport.Consumer()
	for {
		select {
		case rpc := <-in:
			r.judge(rpc.Command)
			select {
			case r.ch <- rpc:
			case <-r.done:
				return
			}
		case <-r.done:
			return
		}
	}
}

// judge rewrites a (pre-)vote request from a server that is not a voter
// here so that Raft's configuration checks pass it on to the term and log
// rules.
func (r *voteRelay) judge(cmd any) {
	var id *[]byte
	switch req := cmd.(type) {
	case *raft.RequestVoteRequest:
		id = &req.ID
	case *raft.RequestPreVoteRequest:
		id = &req.ID
	default:
		return
	}
	latest := r.latest.Load()
	if latest == nil || isVoter((*latest)(), raft.ServerID(*id)) {
		return
	}
	if _, vote := cmd.(*raft.RequestVoteRequest); vote {
		// Without an ID Raft skips its configuration checks for a vote
		// (kept for peers older than protocol 3) and records the vote
		// by address.
		*id = nil
		return
	}
	// A pre-vote has no such path; it is judged as if it came from this
	// node, an ID Raft only checks for suffrage. A pre-vote binds nothing.
	*id = []byte(r.self)
}

// isVoter reports whether c lists id as a voter.
func isVoter(c raft.Configuration, id raft.ServerID) bool {
	for _, s := range c.Servers {
		if s.ID == id {
			return s.Suffrage == raft.Voter
		}
	}
	return false
}
