module github.com/strata-log/strata/services/admin

go 1.26
