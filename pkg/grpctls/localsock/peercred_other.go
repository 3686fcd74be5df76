//go:build !linux

package localsock

import "net"

const supported = false

func peerOf(net.Conn) (Peer, error) { return Peer{}, ErrUnsupported }
