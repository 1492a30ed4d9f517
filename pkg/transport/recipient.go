package transport

import (
	"io"
	"strings"

	"github.com/hashicorp/raft"
)

// hashicorp/raft hands its transport the ID and the address of the server
// each message is for, but NetworkTransport dials the address alone and
// the receiver never learns whom the message was meant for. When a new node
// takes over the address of a dead member that is still in a configuration,
// it would answer that member's appends and votes, with a log it never had:
// the lost-disk case Raft forbids. So the Raft transport folds the ID into
// the address it dials, the layer puts it into the connection header, and
// the receiving mux refuses a connection meant for another node.

// recipientAddress is the address the Raft transport dials for server id at
// addr: "id@addr". A host:port has no '@', so the last one separates them.
func recipientAddress(id raft.ServerID, addr raft.ServerAddress) raft.ServerAddress {
	if id == "" {
		return addr
	}
	return raft.ServerAddress(string(id) + "@" + string(addr))
}

// splitRecipient undoes recipientAddress; a plain address names no one.
func splitRecipient(a raft.ServerAddress) (id, addr string) {
	s := string(a)
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return "", s
	}
	return s[:i], s[i+1:]
}

// RaftTransport is a raft.NetworkTransport over a Layer whose outgoing
// messages name their recipient. Connections are pooled per recipient and
// address, so a member that moves or is replaced gets fresh ones.
type RaftTransport struct {
	*raft.NetworkTransport
}

// NewRaftTransport builds the Raft transport for a partition's layer.
func NewRaftTransport(cfg *raft.NetworkTransportConfig) RaftTransport {
	return RaftTransport{raft.NewNetworkTransportWithConfig(cfg)}
}

// AppendEntriesPipeline implements raft.Transport.
func (t RaftTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	return t.NetworkTransport.AppendEntriesPipeline(id, recipientAddress(id, target))
}

// AppendEntries implements raft.Transport.
func (t RaftTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return t.NetworkTransport.AppendEntries(id, recipientAddress(id, target), args, resp)
}

// RequestVote implements raft.Transport.
func (t RaftTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return t.NetworkTransport.RequestVote(id, recipientAddress(id, target), args, resp)
}

// RequestPreVote implements raft.WithPreVote.
func (t RaftTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.NetworkTransport.RequestPreVote(id, recipientAddress(id, target), args, resp)
}

// InstallSnapshot implements raft.Transport.
func (t RaftTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	return t.NetworkTransport.InstallSnapshot(id, recipientAddress(id, target), args, resp, data)
}

// TimeoutNow implements raft.Transport.
func (t RaftTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return t.NetworkTransport.TimeoutNow(id, recipientAddress(id, target), args, resp)
}
