"""The stream worker's pure domain: the case rules, no Kafka, no Faust, no clock (time comes with each input).

intake (validate and route) → engine (dedup, dispatch, disposal, verification, statistics), over the
rules in casefile, dedup, dispatch, verify and offences.
"""
