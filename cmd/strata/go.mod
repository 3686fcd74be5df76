module github.com/strata-log/strata/cmd/strata

go 1.26
