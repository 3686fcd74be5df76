package grpcserver

import (
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the "proto" codec wrapped below
	"google.golang.org/grpc/mem"
)

// encodedMessage is a message already in protobuf wire format (a
// ConsumeResponse built by appendConsumeResponse); the codec sends its bytes
// as they are. The bytes must not be modified after SendMsg.
type encodedMessage struct{ b []byte }

// codec is the proto codec that also sends encodedMessage without
// re-marshaling, and decodes a rawAppendRequest (AppendStream) without
// copying its frames out of the received buffer. Clients see ordinary
// protobuf.
type codec struct{ proto encoding.CodecV2 }

func newCodec() codec { return codec{proto: encoding.GetCodecV2("proto")} }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*encodedMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(m.b)}, nil
	}
	return c.proto.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*rawAppendRequest); ok {
		return m.unmarshal(data)
	}
	return c.proto.Unmarshal(data, v)
}

func (codec) Name() string { return "proto" }
