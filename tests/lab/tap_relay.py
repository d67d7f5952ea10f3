"""Relay Ethernet frames between a host's existing TAP and a guest TAP, the way a VMM attaches.

    python tests/lab/tap_relay.py --host-netns NS --tap TAP --guest-netns GNS [--ifname eth0] [--mac MAC]

In the host's namespace it opens ``/dev/net/tun`` with ``TUNSETIFF`` ``IFF_TAP|IFF_NO_PI`` on the
existing TAP (like Firecracker does); it refuses to create a missing one. In the guest's namespace
it creates a TAP ``eth0`` (gone when this process ends) with the given MAC, up. Then it prints
``ready`` on stdout and copies frames both ways until it is killed or the host TAP is deleted.
Errors go to stderr with exit code 2. Standard library only, run as a script (``python -I -S``):
it starts fast, which matters under qemu TCG in the kernel lane.
"""

import argparse
import ctypes
import errno
import fcntl
import os
import select
import socket
import struct
import sys

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_UP = 0x1
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFHWADDR = 0x8924
ARPHRD_ETHER = 1
IFREQ_SIZE = 40
FRAME_MAX = 65536


class RelayError(Exception):
    """The relay cannot attach; the message is for the user."""


def setns(name):
    """Move this (single-threaded) process into the named network namespace.

    Opens ``/run/netns/<name>`` itself, so a missing namespace fails instead of being created.
    """
    try:
        fd = os.open(os.path.join('/run/netns', name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RelayError('network namespace %s does not exist' % name) from None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise RelayError('setns(%s): %s' % (name, os.strerror(err)))
    finally:
        os.close(fd)


def ifreq(name, payload=b''):
    return struct.pack('16s', name.encode()) + payload.ljust(IFREQ_SIZE - 16, b'\0')


def open_tap(name):
    """A file descriptor attached to TAP name in the current namespace (created when missing)."""
    fd = os.open('/dev/net/tun', os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, ifreq(name, struct.pack('H', IFF_TAP | IFF_NO_PI)))
    except OSError:
        os.close(fd)
        raise
    return fd


def attach_existing_tap(name, ns):
    """Attach to an existing TAP only: a VMM never creates its TAP."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        raise RelayError('TAP %s does not exist in network namespace %s (a VMM attaches to an existing TAP; create it first)' % (name, ns)) from None
    try:
        return open_tap(name)
    except OSError as exc:
        hint = {
            errno.EINVAL: 'it is not a TAP created without multi_queue (or it is another kind of link)',
            errno.EBUSY: 'another process is attached to it already',
            errno.EPERM: 'the TAP belongs to another user or group',
        }.get(exc.errno, exc.strerror)
        raise RelayError('cannot attach to TAP %s in network namespace %s: %s (%s)' % (name, ns, exc.strerror, hint)) from None


def configure_guest_link(name, mac):
    """Set the MAC address of link name and bring it up (ioctls: no pyroute2 import in the relay)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if mac:
            raw = bytes(int(part, 16) for part in mac.split(':'))
            fcntl.ioctl(sock, SIOCSIFHWADDR, ifreq(name, struct.pack('H', ARPHRD_ETHER) + raw))
        flags = struct.unpack('H', fcntl.ioctl(sock, SIOCGIFFLAGS, ifreq(name))[16:18])[0]
        fcntl.ioctl(sock, SIOCSIFFLAGS, ifreq(name, struct.pack('H', flags | IFF_UP)))
    finally:
        sock.close()


def relay(host_fd, guest_fd):
    """Copy frames both ways; returns when the host TAP goes away."""
    peers = {host_fd: guest_fd, guest_fd: host_fd}
    poller = select.poll()
    for fd in peers:
        poller.register(fd, select.POLLIN)
    while True:
        for fd, event in poller.poll():
            if event & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                return 'link %s closed' % ('host TAP' if fd == host_fd else 'guest TAP')
            try:
                frame = os.read(fd, FRAME_MAX)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EINTR):
                    continue
                return 'reading the %s failed: %s' % ('host TAP' if fd == host_fd else 'guest TAP', exc.strerror)
            try:
                os.write(peers[fd], frame)
            except OSError:
                # the other side is down or full: drop the frame, as a wire would
                continue


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='tap_relay.py', description=__doc__.split('\n', 1)[0])
    parser.add_argument('--host-netns', required=True)
    parser.add_argument('--tap', required=True)
    parser.add_argument('--guest-netns', required=True)
    parser.add_argument('--ifname', default='eth0')
    parser.add_argument('--mac')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        setns(args.host_netns)
        host_fd = attach_existing_tap(args.tap, args.host_netns)
        setns(args.guest_netns)
        try:
            socket.if_nametoindex(args.ifname)
        except OSError:
            pass
        else:
            raise RelayError('link %s already exists in network namespace %s' % (args.ifname, args.guest_netns))
        guest_fd = open_tap(args.ifname)
        configure_guest_link(args.ifname, args.mac)
    except (RelayError, OSError) as exc:
        sys.stderr.write('tap_relay: %s\n' % exc)
        sys.stderr.flush()
        return 2
    sys.stdout.write('ready %s %s\n' % (args.tap, args.ifname))
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    reason = relay(host_fd, guest_fd)
    sys.stderr.write('tap_relay: stopping: %s\n' % reason)
    return 0


if __name__ == '__main__':
    sys.exit(main())
