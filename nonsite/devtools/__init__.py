"""Development tools: the local Apache Kafka launcher (:mod:`nonsite.devtools.kafka_local`, behind
``nonsite kafka start|stop|status``) and the end-to-end demo (:mod:`nonsite.devtools.demo`, ``nonsite demo``)."""
