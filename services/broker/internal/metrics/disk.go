package metrics

import (
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
)

// diskCollector reports the file system of each data directory at scrape
// time (statfs): bytes free to the broker, used, and the size.
type diskCollector struct {
	dirs                 []string
	free, used, capacity *prometheus.Desc
}

// WatchDataDirs reports the file system under each directory as
// strata_broker_data_dir_{free,used,capacity}_bytes{dir}.
func (m *Metrics) WatchDataDirs(dirs ...string) {
	l := []string{"dir"}
	m.reg.MustRegister(&diskCollector{
		dirs:     dirs,
		free:     prometheus.NewDesc("strata_broker_data_dir_free_bytes", "Bytes free to the broker (not reserved for root) on the data directory's file system.", l, nil),
		used:     prometheus.NewDesc("strata_broker_data_dir_used_bytes", "Bytes used on the data directory's file system (by anything).", l, nil),
		capacity: prometheus.NewDesc("strata_broker_data_dir_capacity_bytes", "Size of the data directory's file system.", l, nil),
	})
}

func (c *diskCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.free
	ch <- c.used
	ch <- c.capacity
}

func (c *diskCollector) Collect(ch chan<- prometheus.Metric) {
	for _, d := range c.dirs {
		var st syscall.Statfs_t
		if err := syscall.Statfs(d, &st); err != nil {
			// A directory that cannot be read reports nothing; the data
			// directory probe reports it unwritable.
			continue
		}
		bs := float64(st.Bsize)
		ch <- prometheus.MustNewConstMetric(c.free, prometheus.GaugeValue, float64(st.Bavail)*bs, d)
		ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, float64(st.Blocks-st.Bfree)*bs, d)
		ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, float64(st.Blocks)*bs, d)
	}
}
