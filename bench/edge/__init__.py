"""Edge-agent benchmark: footprint (RSS, CPU) at 1,000 readings/s and replay of a one-million-reading
backlog, each with a bare paho-mqtt baseline measured in the same run. Run ``python -m bench.edge``."""
