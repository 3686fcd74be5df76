module github.com/strata-log/strata/pkg/atomicfile

go 1.26.0
