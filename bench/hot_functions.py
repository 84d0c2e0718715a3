#!/usr/bin/env python3
"""Regenerates link/hot-functions.txt: the functions of `authd` that a start and a minute of mixed
load (bench/soak.py) run, as callgrind sees them. The release build lays them out together, so the
code a running server touches stays a few megabytes instead of all of it (build.rs).

    python3 bench/hot_functions.py [path/to/release/authd]

Needs valgrind. Takes a few minutes: the server runs about fifty times slower under callgrind.
Rebuild the release binary afterwards.
"""
import os, re, subprocess, sys, tempfile

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)


def executed(profile, binary_name):
    """Mangled names of the functions of `binary_name` that ran at least one instruction."""
    names, objects, ran = {}, {}, set()
    function = obj = None
    with open(profile) as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line)
            if m:
                kind, ident, name = m.groups()
                if name:
                    names[ident] = name
                if kind == "fn":
                    function = (ident, obj)
                continue
            m = re.match(r"^(c?ob)=\((\d+)\)(?: (.*))?$", line)
            if m:
                kind, ident, name = m.groups()
                if name:
                    objects[ident] = name
                if kind == "ob":
                    obj = ident
                continue
            if function and line[:1] and (line[0].isdigit() or line[0] in "+-*"):
                ran.add(function)
    found = set()
    for ident, o in ran:
        name = names.get(ident, "")
        if objects.get(o, "").endswith("/" + binary_name) and not name.startswith(("(", "0x")):
            found.add(re.sub(r"'\d+$", "", name))  # callgrind marks recursion levels as 'N
    return sorted(found)


def main():
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "target/release/authd"))
    work = tempfile.mkdtemp()
    profile = os.path.join(work, "callgrind.out")
    wrapper = os.path.join(work, "authd")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file={profile} --demangle=no "
                f"--dump-instr=no {binary} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    # The soak's own verdict on memory means nothing under valgrind; only the profile is wanted.
    subprocess.run([sys.executable, os.path.join(here, "soak.py"), wrapper, "--minutes", "1", "--clients", "4",
                    "--every", "20", "--cooldown", "10", "--idle-target", "100000"], check=False)
    found = executed(profile, os.path.basename(binary))
    if len(found) < 1000:
        sys.exit(f"only {len(found)} functions in the profile; is {binary} a release build with symbols?")
    with open(os.path.join(root, "link/hot-functions.txt"), "w") as f:
        f.write("\n".join(found) + "\n")
    print(f"{len(found)} functions written to link/hot-functions.txt")


if __name__ == "__main__":
    main()
