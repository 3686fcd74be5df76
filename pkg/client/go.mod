module github.com/strata-log/strata/pkg/client

go 1.26
