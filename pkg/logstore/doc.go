// Package logstore is Strata's storage engine: the segmented, CRC-checked log of one partition.
package logstore
