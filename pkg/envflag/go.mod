module github.com/strata-log/strata/pkg/envflag

go 1.26.0
