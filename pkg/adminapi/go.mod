module github.com/strata-log/strata/pkg/adminapi

go 1.26.0
