module github.com/strata-log/strata/cmd/strata

go 1.26.0

require (
	github.com/chromedp/chromedp v0.23.1
	github.com/strata-log/strata/pkg/adminapi v0.0.0
	github.com/strata-log/strata/pkg/atomicfile v0.0.0
	github.com/strata-log/strata/pkg/client v0.0.0
	github.com/strata-log/strata/pkg/proto v0.0.0
	github.com/strata-log/strata/pkg/topicconfig v0.0.0
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
	software.sslmate.com/src/go-pkcs12 v0.7.4
)

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	github.com/prometheus/client_model v0.6.3 // indirect
	github.com/prometheus/common v0.72.0 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	go.opentelemetry.io/otel v1.47.0 // indirect
	go.opentelemetry.io/otel/trace v1.47.0 // indirect
)

require (
	github.com/chromedp/cdproto v0.160.1
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/strata-log/strata/pkg/grpctls v0.0.0
	github.com/strata-log/strata/pkg/logstore v0.0.0 // indirect
	go.uber.org/multierr v1.10.0 // indirect
	go.uber.org/zap v1.28.0 // indirect
	golang.org/x/crypto v0.57.0 // indirect
	golang.org/x/exp v0.0.0-20261113113407-e3970619a1a4 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1
)

replace (
	github.com/strata-log/strata/pkg/client => ../../pkg/client
	github.com/strata-log/strata/pkg/proto => ../../pkg/proto
)

replace github.com/strata-log/strata/pkg/grpctls => ../../pkg/grpctls

replace github.com/strata-log/strata/pkg/atomicfile => ../../pkg/atomicfile

replace github.com/strata-log/strata/pkg/topicconfig => ../../pkg/topicconfig

replace github.com/strata-log/strata/pkg/logstore => ../../pkg/logstore

replace github.com/strata-log/strata/pkg/adminapi => ../../pkg/adminapi
