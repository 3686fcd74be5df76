module github.com/strata-log/strata/pkg/acl

go 1.26.0

require (
	github.com/casbin/casbin/v2 v2.135.0
	go.uber.org/zap v1.28.0
)

require (
	github.com/bmatcuk/doublestar/v4 v4.6.1 // indirect
	github.com/casbin/govaluate v1.3.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	go.uber.org/multierr v1.10.0 // indirect
)
