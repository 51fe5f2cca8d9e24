"""A gateway written with Eclipse Paho (Python) and PyJWT, as ClearBlade's samples are: it connects over TLS
with its own JWT, subscribes to its errors topic, attaches a bound device, publishes telemetry for it, receives
its config and detaches it. Unlike the samples it waits for each acknowledgement instead of sleeping.

Usage: paho_gateway.py '<json settings>'
  settings: host, port, caFile, project, location, registry, gatewayId, keyFile, deviceId, payload,
            timeoutSeconds (optional, default 5)
Prints one JSON object per step on stdout, stops at the first step that fails (then reports the errors topic),
and exits 0 when every step succeeded.
"""
import datetime
import json
import ssl
import sys
import threading

import jwt
import paho.mqtt.client as mqtt



def report(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def main(settings):
    timeout = settings.get("timeoutSeconds", 5)
    now = datetime.datetime.now(tz=datetime.timezone.utc)
    with open(settings["keyFile"]) as f:
        token = jwt.encode(
            {"iat": now, "exp": now + datetime.timedelta(minutes=20), "aud": settings["project"]},
            f.read(),
            algorithm="ES256",
        )
    client_id = "projects/{project}/locations/{location}/registries/{registry}/devices/{gatewayId}".format(**settings)
    gateway, device = settings["gatewayId"], settings["deviceId"]

    client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv311, clean_session=True)
    client.username_pw_set(username="unused", password=token)
    client.tls_set(ca_certs=settings["caFile"], tls_version=ssl.PROTOCOL_TLSv1_2)

    connected = threading.Event()
    connack = {}
    acked = {}
    configs = []
    errors = []
    got_config = threading.Event()
    subscribed = {}

    def on_connect(_client, _userdata, _flags, rc):
        connack["rc"] = rc
        connected.set()

    def on_publish(_client, _userdata, mid):
        acked.setdefault(mid, threading.Event()).set()

    def on_subscribe(_client, _userdata, mid, granted_qos):
        subscribed.setdefault(mid, {})["granted"] = list(granted_qos)
        subscribed[mid].setdefault("event", threading.Event()).set()

    def on_message(_client, _userdata, message):
        if message.topic == "/devices/{}/errors".format(gateway):
            errors.append(json.loads(message.payload.decode("utf-8")))
        elif message.topic == "/devices/{}/config".format(device):
            configs.append(message.payload.decode("utf-8"))
            got_config.set()

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.on_subscribe = on_subscribe
    client.on_message = on_message

    def publish_and_wait(topic, payload):
        info = client.publish(topic, payload, qos=1)
        return acked.setdefault(info.mid, threading.Event()).wait(timeout)

    def subscribe_and_wait(topic, qos):
        _rc, mid = client.subscribe(topic, qos=qos)
        entry = subscribed.setdefault(mid, {})
        entry.setdefault("event", threading.Event()).wait(timeout)
        return entry.get("granted")

    client.connect(settings["host"], settings["port"], keepalive=60)
    client.loop_start()
    try:
        ok = connected.wait(timeout) and connack.get("rc") == 0
        report("connect", ok=ok, rc=connack.get("rc"))
        if not ok:
            return 1

        def steps():
            granted = subscribe_and_wait("/devices/{}/errors".format(gateway), 0)
            report("subscribe-errors", granted=granted)
            yield granted == [0]

            attached = publish_and_wait("/devices/{}/attach".format(device), '{"authorization" : ""}')
            report("attach", acked=attached)
            yield attached

            published = publish_and_wait("/devices/{}/events".format(device), settings["payload"])
            report("publish", acked=published)
            yield published

            granted = subscribe_and_wait("/devices/{}/config".format(device), 1)
            received = got_config.wait(timeout)
            report("config", granted=granted, received=received, payload=configs[0] if configs else None)
            yield granted == [1] and received

            detached = publish_and_wait("/devices/{}/detach".format(device), "{}")
            report("detach", acked=detached)
            yield detached

        ok = all(steps())
        report("errors", errors=errors)
        ok = ok and errors == []
    finally:
        client.disconnect()
        client.loop_stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
