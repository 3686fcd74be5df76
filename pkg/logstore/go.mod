module github.com/strata-log/strata/pkg/logstore

go 1.26
