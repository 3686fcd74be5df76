module github.com/strata-log/strata/pkg/logstore

go 1.26.0

require (
	github.com/strata-log/strata/pkg/atomicfile v0.0.0
	go.uber.org/goleak v1.3.0
	go.uber.org/zap v1.28.0
	golang.org/x/exp v0.0.0-20261113113407-e3970619a1a4
)

require go.uber.org/multierr v1.10.0 // indirect

replace github.com/strata-log/strata/pkg/atomicfile => ../atomicfile
