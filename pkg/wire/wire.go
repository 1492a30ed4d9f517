// Package wire holds the JSON shapes of Kahuna's REST API. They are shared by
// the server, the Go client, the CLI and the load tool so that every side
// agrees on field names and numeric codes, which must stay compatible with the
// original Kahuna's REST clients.
package wire

// Type is the numeric outcome code every reply carries in its "type" field.
type Type int

// Outcome codes, exactly as the original Kahuna numbers them.
const (
	Locked           Type = 0
	Busy             Type = 1
	Extended         Type = 2
	Unlocked         Type = 3
	Got              Type = 4
	Errored          Type = 99
	InvalidInput     Type = 100
	MustRetry        Type = 101
	LockDoesNotExist Type = 102
	InvalidOwner     Type = 103
)

// String names the code the way the contract does.
func (t Type) String() string {
	switch t {
	case Locked:
		return "Locked"
	case Busy:
		return "Busy"
	case Extended:
		return "Extended"
	case Unlocked:
		return "Unlocked"
	case Got:
		return "Got"
	case Errored:
		return "Errored"
	case InvalidInput:
		return "InvalidInput"
	case MustRetry:
		return "MustRetry"
	case LockDoesNotExist:
		return "LockDoesNotExist"
	case InvalidOwner:
		return "InvalidOwner"
	default:
		return "Unknown"
	}
}

// Durability selects the lock namespace.
type Durability int

const (
	// Ephemeral locks live in the partition leader's memory only.
	Ephemeral Durability = 0
	// Persistent locks are committed through Raft before the reply.
	Persistent Durability = 1
)

// String names the durability for logs and tables.
func (d Durability) String() string {
	switch d {
	case Ephemeral:
		return "ephemeral"
	case Persistent:
		return "persistent"
	default:
		return "unknown"
	}
}

// API paths.
const (
	PathTryLock       = "/v1/locks/try-lock"
	PathTryExtend     = "/v1/locks/try-extend"
	PathTryUnlock     = "/v1/locks/try-unlock"
	PathGetInfo       = "/v1/locks/get-info"
	PathForceUnlock   = "/v1/locks/force-unlock"
	PathList          = "/v1/locks"
	PathClusterStatus = "/v1/cluster/status"
	PathRemoveNode    = "/v1/cluster/remove-node"
	PathLivez         = "/livez"
	PathReadyz        = "/readyz"
	PathOpenAPI       = "/v1/openapi.json"
	PathMetrics       = "/metrics"
	PathUI            = "/ui/"
)

// Input limits of the contract.
const (
	MaxResourceBytes = 1024
	MaxOwnerBytes    = 256
	MinExpiresMs     = 1
	MaxExpiresMs     = 2_147_483_647
	MaxWaitMs        = 3_600_000
	MaxBodyBytes     = 1 << 20
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// LockRequest is the body of try-lock, try-extend, try-unlock, get-info and
// force-unlock. Pointer fields let the server tell "missing" from "zero".
type LockRequest struct {
	Resource   *string `json:"resource,omitempty"`
	Owner      *string `json:"owner,omitempty"`
	ExpiresMs  *int64  `json:"expiresMs,omitempty"`
	Durability *int    `json:"durability,omitempty"`
	WaitMs     *int64  `json:"waitMs,omitempty"`
}

// HLC is the original Kahuna's hybrid-logical-clock timestamp; only L (unix
// milliseconds) carries meaning here, N and C are always zero.
type HLC struct {
	N int   `json:"n"`
	L int64 `json:"l"`
	C int   `json:"c"`
}

// LockResponse is the reply to every lock operation. Fields that do not apply
// to an outcome are omitted.
type LockResponse struct {
	Type         Type   `json:"type"`
	ServedFrom   string `json:"servedFrom"`
	Error        string `json:"error,omitempty"`
	FencingToken *int64 `json:"fencingToken,omitempty"`
	Owner        string `json:"owner,omitempty"`
	Expires      *HLC   `json:"expires,omitempty"`
	AcquiredAt   string `json:"acquiredAt,omitempty"`
	ExpiresAt    string `json:"expiresAt,omitempty"`
	ExpiresInMs  *int64 `json:"expiresInMs,omitempty"`
}

// LockInfo is one entry of a list reply.
type LockInfo struct {
	Resource     string     `json:"resource"`
	Owner        string     `json:"owner"`
	FencingToken int64      `json:"fencingToken"`
	Durability   Durability `json:"durability"`
	AcquiredAt   string     `json:"acquiredAt"`
	ExpiresAt    string     `json:"expiresAt"`
	ExpiresInMs  int64      `json:"expiresInMs"`
}

// ListResponse is the reply of GET /v1/locks.
type ListResponse struct {
	Type       Type       `json:"type"`
	ServedFrom string     `json:"servedFrom"`
	Error      string     `json:"error,omitempty"`
	Locks      []LockInfo `json:"locks"`
	NextCursor string     `json:"nextCursor,omitempty"`
}

// NodeStatus describes one member of the cluster.
type NodeStatus struct {
	ID         string `json:"id"`
	HTTPAddr   string `json:"httpAddr"`
	RaftAddr   string `json:"raftAddr"`
	GossipAddr string `json:"gossipAddr,omitempty"`
	State      string `json:"state"` // one of the Node* states
	// Role is the node's place in the partitions' Raft configurations,
	// one of the Role* values.
	Role string `json:"role"`
}

// Node roles in the cluster status.
const (
	// RoleVoter: a voter of every partition.
	RoleVoter = "voter"
	// RoleNonVoter: in some partition's configuration, but not yet a
	// voter of every partition (a joining node catching up).
	RoleNonVoter = "non-voter"
	// RoleJoining: asks to join, not yet added to any partition.
	RoleJoining = "joining"
	// RoleNone: in no partition's configuration (removed, or refused).
	RoleNone = "none"
)

// Node states in the cluster status, as gossip sees the node.
const (
	NodeAlive   = "alive"
	NodeSuspect = "suspect"
	NodeFailed  = "failed"
	NodeLeft    = "left"
)

// PartitionStatus describes one Raft group as this node sees it.
type PartitionStatus struct {
	ID           int      `json:"id"`
	Leader       string   `json:"leader"`
	State        string   `json:"state"`
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commitIndex"`
	AppliedIndex uint64   `json:"appliedIndex"`
	Voters       []string `json:"voters"`
	// NonVoters receive the log but do not vote: nodes that joined and
	// are catching up before they are promoted.
	NonVoters []string `json:"nonVoters"`
	Locks     int      `json:"locks"`
}

// ClusterStatus is the reply of GET /v1/cluster/status.
type ClusterStatus struct {
	Type       Type              `json:"type"`
	ServedFrom string            `json:"servedFrom"`
	Node       NodeStatus        `json:"node"`
	Nodes      []NodeStatus      `json:"nodes"`
	Partitions []PartitionStatus `json:"partitions"`
}

// RemoveNodeRequest is the body of POST /v1/cluster/remove-node.
type RemoveNodeRequest struct {
	Node string `json:"node"`
}

// RemoveNodeResponse is its reply: 200 with Removed, or 400/404/409/503
// with Error.
type RemoveNodeResponse struct {
	Removed    string `json:"removed,omitempty"`
	ServedFrom string `json:"servedFrom"`
	Error      string `json:"error,omitempty"`
}

// Health is the reply of /livez and /readyz.
type Health struct {
	Status     string `json:"status"`
	ServedFrom string `json:"servedFrom"`
	Reason     string `json:"reason,omitempty"`
}
