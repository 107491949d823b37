"""Camera status: online/offline alerts, and what the camera's last inference says about open cases."""
from __future__ import annotations

from contract import CameraStatus
from stream.domain.engine.outputs import Outputs
from stream.domain.engine.timers import Timers
from stream.domain.engine.timeutil import to_epoch
from stream.domain.intake import Envelope
from stream.domain.verify import observe_camera


class CameraRules(Timers):
    def _on_camera_status(self, env: Envelope, s: CameraStatus, out: Outputs) -> None:
        now = to_epoch(s.last_inference_at or s.observed_at)
        previous = self.tables.camera_states.get(s.camera_id)
        if previous != s.state:
            self.tables.camera_states[s.camera_id] = s.state
            if previous is not None or s.state == "offline":
                self._alert(out, f"camera_{s.state}", "warning" if s.state == "offline" else "info", now,
                            f"camera {s.camera_id} is {s.state} {s.reason}".strip(), camera_id=s.camera_id,
                            suffix=f"{s.state}:{env.source}")
        if s.state != "online":
            return  # a camera that cannot see verifies nothing
        active = set(s.active)
        for incident_id in self._open_ids(env.district):
            case = self.load(incident_id)
            spots = [name for name in case.presence.spots if name.split("/", 1)[0] == s.camera_id]
            if not spots:
                continue
            for name in spots:
                zone_id = name.split("/", 1)[1]
                case.presence = observe_camera(case.presence, name, f"{case.incident['scenario']}/{zone_id}" in active,
                                               now)
            self._judge(case, now, env, out, timers=False)
            self.save(case, out)

