module github.com/strata-log/strata/services/broker

go 1.26
