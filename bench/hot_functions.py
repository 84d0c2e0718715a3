#!/usr/bin/env python3
"""Regenerates link/hot-functions.txt: the functions of `authd` that a start and a minute of mixed
load (bench/soak.py) run, as callgrind sees them. The release build lays them out together, so the
code a running server touches stays a few megabytes instead of all of it (build.rs).

    cargo build --release && python3 bench/hot_functions.py
    cargo bench --no-run && python3 bench/hot_functions.py --keep

`cargo bench` builds under its own profile, which names generic functions differently, so the
list holds the names of both builds: `--keep` adds to the list instead of replacing it.
Needs valgrind. Takes a few minutes: the server runs about fifty times slower under callgrind.
Rebuild afterwards.
"""
import os, re, subprocess, sys, tempfile

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)


def executed(profile, binary_name):
    """Mangled names of the functions of `binary_name` that ran at least one instruction."""
    # callgrind names a function or object once, as `fn=(7) name`, and by number after that;
    # `cfn=`/`cob=` name a callee without making it current.
    names = {"fn": {}, "ob": {}}
    current = {"fn": None, "ob": None}
    ran = set()
    with open(profile) as f:
        for line in f:
            m = re.match(r"^c?(fn|ob)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if m:
                kind, ident, name = m.groups()
                if name:
                    names[kind][ident] = name
                if not line.startswith("c"):
                    current[kind] = ident
                continue
            if current["fn"] and line[:1] and (line[0].isdigit() or line[0] in "+-*"):
                ran.add((current["fn"], current["ob"]))
    found = set()
    for ident, o in ran:
        name = names["fn"].get(ident, "")
        if names["ob"].get(o, "").endswith("/" + binary_name) and not name.startswith(("(", "0x")):
            found.add(re.sub(r"'\d+$", "", name))  # callgrind marks recursion levels as 'N
    return sorted(found)


def main():
    args = [a for a in sys.argv[1:] if a != "--keep"]
    keep = "--keep" in sys.argv[1:]
    binary = os.path.abspath(args[0] if args else os.path.join(root, "target/release/authd"))
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
    listed = os.path.join(root, "link/hot-functions.txt")
    if keep:
        with open(listed) as f:
            found = sorted(set(found) | {line.strip() for line in f if line.strip()})
    with open(listed, "w") as f:
        f.write("\n".join(found) + "\n")
    print(f"{len(found)} functions in link/hot-functions.txt")


if __name__ == "__main__":
    main()
