module github.com/strata-log/strata/services/replicator

go 1.26
