#!/bin/sh
# /init of the netem test guest (scripts/vm-netem-test.sh): loads the
# modules, runs the kernel-backend test binary as root with the arguments in
# /args, prints "GUEST-RESULT: <rc>" and powers off. No NIC: nothing leaves.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /run /tmp && mount -t tmpfs run /run && mount -t tmpfs tmp /tmp
trap 'echo "GUEST-RESULT: ${rc:-99}"; poweroff -f' EXIT
echo "guest: up at $(cut -d' ' -f1 /proc/uptime)s, kernel $(uname -r), clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
for m in $(cat /modules); do modprobe "$m" || echo "guest: modprobe $m failed"; done
cd /tmp
LABCTL_KERNEL_NETEM=1 TC_LIB_DIR=/usr/lib/tc /kernelnetem.test -test.v -test.count=1 -test.timeout=170s $(cat /args)
rc=$?
echo "guest: tests done at $(cut -d' ' -f1 /proc/uptime)s"
