"""The one Kafka layer: topics and replication (:mod:`nonsite.kafka.admin`), and the clients the
processes build — kafka-python (:mod:`nonsite.kafka.clients`, every process) and aiokafka
(:mod:`nonsite.kafka.aioclients`, the worker and the web app, whose extras install it)."""
