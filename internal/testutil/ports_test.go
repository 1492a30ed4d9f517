package testutil

import (
	"fmt"
	"testing"
)

// TestAReservedPortIsNotHandedOutAgain: a port reserved once (as by another
// test process: a second open of its file is a second claimant) cannot be
// reserved again while the first holder lives.
func TestAReservedPortIsNotHandedOutAgain(t *testing.T) {
	addr := FreeAddr(t)
	var port int
	if _, err := fmt.Sscanf(addr, "127.0.0.1:%d", &port); err != nil {
		t.Fatal(err)
	}
	if reservePort(port) {
		t.Fatalf("port %d reserved twice", port)
	}
}
