module github.com/strata-log/strata/pkg/pki

go 1.26
