module github.com/strata-log/strata/pkg/acl

go 1.26.0

require (
	github.com/casbin/casbin/v2 v2.135.0
	github.com/strata-log/strata/pkg/adminapi v0.0.0
	github.com/strata-log/strata/pkg/atomicfile v0.0.0
	go.uber.org/goleak v1.3.0
	go.uber.org/zap v1.28.0
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/cloudflare/cfssl v1.6.5 // indirect
	github.com/go-logr/logr v1.4.4 // indirect
	github.com/google/certificate-transparency-go v1.1.7 // indirect
	github.com/jmoiron/sqlx v1.3.5 // indirect
	github.com/pelletier/go-toml v1.9.3 // indirect
	github.com/weppos/publicsuffix-go v0.30.0 // indirect
	github.com/zmap/zcrypto v0.0.0-20230310154051-c8b263fd8300 // indirect
	github.com/zmap/zlint/v3 v3.5.0 // indirect
	golang.org/x/crypto v0.57.0 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	k8s.io/klog/v2 v2.100.1 // indirect
)

require (
	github.com/bmatcuk/doublestar/v4 v4.6.1 // indirect
	github.com/casbin/govaluate v1.3.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/strata-log/strata/pkg/pki v0.0.0
	go.uber.org/multierr v1.11.0 // indirect
)

replace github.com/strata-log/strata/pkg/pki => ../pki

replace github.com/strata-log/strata/pkg/atomicfile => ../atomicfile

replace github.com/strata-log/strata/pkg/adminapi => ../adminapi
