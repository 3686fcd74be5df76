module github.com/strata-log/strata/pkg/topicconfig

go 1.26.0

require (
	github.com/strata-log/strata/pkg/logstore v0.0.0
	github.com/strata-log/strata/pkg/proto v0.0.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/strata-log/strata/pkg/atomicfile v0.0.0 // indirect
	go.uber.org/multierr v1.10.0 // indirect
	go.uber.org/zap v1.28.0 // indirect
	golang.org/x/exp v0.0.0-20261113113407-e3970619a1a4 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/grpc v1.85.0 // indirect
)

replace (
	github.com/strata-log/strata/pkg/atomicfile => ../atomicfile
	github.com/strata-log/strata/pkg/logstore => ../logstore
	github.com/strata-log/strata/pkg/proto => ../proto
)
