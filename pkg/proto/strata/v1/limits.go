package stratav1

// Limits of the wire protocol, shared by every client and server. A
// message must hold the largest record a topic may accept with room to
// spare for its framing: one record travels alone in a ProduceRequest, a
// ConsumeResponse or a FetchResponse when it is larger than the batch
// limits, so a gRPC limit below it would make such a record impossible
// to produce, consume or replicate ("grpc: received message larger than
// max").
const (
	// MaxRecordBytes is the largest max.record.bytes a topic may have:
	// a record's key, value and headers. pkg/topicconfig's
	// MaxRecordBytesLimit is the same (a broker test checks it).
	MaxRecordBytes = 64 << 20
	// MessageHeadroomBytes is what a message needs beyond one record of
	// MaxRecordBytes: its topic, offsets, frame headers and protobuf tags.
	MessageHeadroomBytes = 1 << 20
	// MaxMessageBytes is the largest gRPC message a client or server
	// sends or receives.
	MaxMessageBytes = MaxRecordBytes + MessageHeadroomBytes
)
