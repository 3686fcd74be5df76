// Package topicconfig owns a topic's settings: the Config type, the
// built-in defaults, every setting's key and allowed range, validation,
// the topic name rules, the fsync policy, the storage engine options a
// config translates to, and the conversion to and from
// strata.v1.TopicConfig.
//
// The CLI parses --config key=value with it, the controller validates
// with it before it commits a topic's config to the cluster metadata, and
// every broker validates and applies with it, so a setting the controller
// accepts is one every broker applies. Adding a setting touches this
// package (Config, Default, the settings table, Proto and FromProto), the
// proto and the docs.
//
// Settings are named as the CLI names them (max.record.bytes, not
// max_record_bytes), in errors too.
package topicconfig
