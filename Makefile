# Two entry points on a fresh machine: `make demo` and `make test`. Each creates .venv when
# missing and installs everything (ROS 2 wheels, torch==2.13.0, the interface package, the
# project in editable mode). Re-running only reinstalls what changed.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PIP_INSTALL := $(PIP) install --disable-pip-version-check -c requirements/constraints.txt
MSGS_BUILD := build/mm_fusion_msgs
STAMP := $(VENV)/.mm_fusion_installed
# DDS traffic of tests, benchmarks and the demo stays on this machine.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: all venv demo test lint bench colcon-build checkpoint system-deps clean

all: venv

venv: $(STAMP)

system-deps:
	@sh tools/check_system_deps.sh

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --disable-pip-version-check -q --upgrade pip

# Interface package (ament_cmake + rosidl) built from the ros-* wheels into the venv prefix, so
# nothing has to be sourced at run time.
$(VENV)/.mm_fusion_msgs_built: $(PY) requirements/*.txt mm_fusion_msgs/CMakeLists.txt mm_fusion_msgs/package.xml mm_fusion_msgs/msg/*.msg
	$(PIP_INSTALL) -r requirements/venv.txt
	rm -rf $(MSGS_BUILD)
	cmake -S mm_fusion_msgs -B $(MSGS_BUILD) -DBUILD_TESTING=OFF \
	  -DCMAKE_INSTALL_PREFIX=$(abspath $(VENV)) -DCMAKE_PREFIX_PATH=$(abspath $(VENV)) \
	  -DPython3_EXECUTABLE=$(abspath $(PY)) > $(VENV)/mm_fusion_msgs_build.log 2>&1 \
	  || { tail -40 $(VENV)/mm_fusion_msgs_build.log; exit 1; }
	cmake --build $(MSGS_BUILD) -j2 >> $(VENV)/mm_fusion_msgs_build.log 2>&1 \
	  || { tail -40 $(VENV)/mm_fusion_msgs_build.log; exit 1; }
	cmake --install $(MSGS_BUILD) >> $(VENV)/mm_fusion_msgs_build.log 2>&1
	touch $@

$(STAMP): $(VENV)/.mm_fusion_msgs_built setup.py setup.cfg | system-deps
	$(PIP_INSTALL) -e '.[onnx,open3d]'
	$(PY) -c 'import rclpy, torch, open3d, mm_fusion_msgs.msg, mm_fusion_ros'
	touch $@

demo: $(STAMP)
	$(VENV)/bin/mm-fusion demo

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Reproduce the shipped checkpoint: simulate the data, train (stage 1), then three DAgger rounds:
# the latest model drives new training-side scenarios, the expert labels the states it reaches,
# training continues on all caches so far (stages 2-4; stage 4 adds photometric augmentation);
# stages 1-4 ran on the first scenario mix (--mix-pairing first); stage 5 adds 648 episodes of
# the corrected mix (config/training/train_mix2.yaml); its best
# epoch goes into the package. About 3 h 50 min on 2 idle CPU cores (3 min data, 40 min
# stage 1, 7 + 35 min round 1, 11 + 38 min round 2, 9 + 50 min round 3, 4 + 29 min stage 5).
checkpoint: $(STAMP)
	$(VENV)/bin/mm-fusion dataset --out data/cache --splits train,val --mix-pairing first
	$(VENV)/bin/mm-fusion train --config config/training/train.yaml
	$(VENV)/bin/mm-fusion dagger --checkpoint runs/fusion/best.pt --out data/cache/dagger \
		--mix-pairing first
	$(VENV)/bin/mm-fusion train --config config/training/train_dagger.yaml
	$(VENV)/bin/mm-fusion dagger --checkpoint runs/fusion_dagger/best.pt \
		--out data/cache/dagger2 --seed 200324 --mix-pairing first
	$(VENV)/bin/mm-fusion train --config config/training/train_dagger2.yaml
	$(VENV)/bin/mm-fusion dagger --checkpoint runs/fusion_dagger2/best.pt \
		--out data/cache/dagger3 --seed 200648 --mix-pairing first
	$(VENV)/bin/mm-fusion train --config config/training/train_dagger3.yaml
	$(VENV)/bin/mm-fusion dataset --out data/cache_mix2 --train-seed 300000 \
		--train-episodes 648 --splits train,val
	$(VENV)/bin/mm-fusion train --config config/training/train_mix2.yaml
	cp runs/fusion_mix2/best.pt mm_fusion_ros/checkpoints/fusion_default.pt

# The distro path, tried with colcon from PyPI against the wheels' prefix.
colcon-build: $(STAMP)
	$(PY) tools/colcon_build.py --workspace /tmp/mm_fusion_colcon_ws

clean:
	rm -rf $(VENV) build install log
