module github.com/strata-log/strata/pkg/proto

go 1.26
