"""Build a small deterministic demo scene and save it as a .blend file.

Usage:
    blender -b --factory-startup --python-exit-code 1 \
        --python make_scene.py -- OUT.blend

The scene is made from primitives only (no external assets): a ground
plane, four coloured objects, a sun light, a camera, and an 8-frame
keyframed animation.  Render settings are chosen to be cheap on a CPU:
Cycles, 8 samples, no denoising (Debian's Blender lacks OpenImageDenoise),
320x180 PNG output.
"""
import math
import os
import sys

import bpy


def parse_out_path():
    # Everything after "--" belongs to this script, not to Blender.
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    if len(argv) != 1:
        raise SystemExit("usage: blender -b --python make_scene.py -- OUT.blend")
    return os.path.abspath(argv[0])


def material(name, rgb):
    # Simple Principled BSDF material with a solid base colour.
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*rgb, 1.0)
    bsdf.inputs["Roughness"].default_value = 0.5
    return mat


def add(op, name, location, rgb, **kwargs):
    # Create a primitive with the given operator and give it a material.
    op(location=location, **kwargs)
    obj = bpy.context.active_object
    obj.name = name
    obj.data.materials.append(material(name + "Mat", rgb))
    return obj


def main():
    out = parse_out_path()

    # Start from an empty scene (factory startup has a cube, light, camera).
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene

    # Ground plane and four coloured objects.
    add(bpy.ops.mesh.primitive_plane_add, "Ground", (0, 0, 0), (0.8, 0.8, 0.8), size=20)
    cube = add(bpy.ops.mesh.primitive_cube_add, "RedCube", (-3, 0, 1), (0.9, 0.1, 0.1), size=2)
    sphere = add(bpy.ops.mesh.primitive_uv_sphere_add, "GreenSphere", (0, 2, 1), (0.1, 0.8, 0.2), radius=1)
    cone = add(bpy.ops.mesh.primitive_cone_add, "BlueCone", (3, 0, 1), (0.1, 0.3, 0.9), radius1=1, depth=2)
    torus = add(bpy.ops.mesh.primitive_torus_add, "YellowTorus", (0, -2, 1), (0.95, 0.8, 0.1))

    # Keyframes on frames 1 and 8; linear interpolation so each frame differs.
    scene.frame_start, scene.frame_end = 1, 8
    for frame, t in ((1, 0.0), (8, 1.0)):
        scene.frame_set(frame)
        cube.rotation_euler = (0, 0, t * math.pi / 3)
        sphere.location = (-2 + 4 * t, 2, 1 + t)
        cone.location = (3, -1 + 3 * t, 1)
        torus.rotation_euler = (t * math.pi / 2, 0, 0)
        for obj, path in ((cube, "rotation_euler"), (sphere, "location"),
                          (cone, "location"), (torus, "rotation_euler")):
            obj.keyframe_insert(data_path=path, frame=frame)
    for obj in (cube, sphere, cone, torus):
        for fcurve in obj.animation_data.action.fcurves:
            for key in fcurve.keyframe_points:
                key.interpolation = "LINEAR"
    scene.frame_set(1)

    # Sun light.
    bpy.ops.object.light_add(type="SUN", location=(5, -5, 10), rotation=(0.6, 0.2, 0.8))
    bpy.context.active_object.data.energy = 3.0

    # Camera aimed at the origin with a Track To constraint.
    bpy.ops.object.camera_add(location=(0, -16, 9))
    camera = bpy.context.active_object
    target = bpy.data.objects.new("CameraTarget", None)
    scene.collection.objects.link(target)
    track = camera.constraints.new("TRACK_TO")
    track.target = target
    track.track_axis, track.up_axis = "TRACK_NEGATIVE_Z", "UP_Y"
    scene.camera = camera

    # World: plain mid-grey background so the sky is not black.
    world = bpy.data.worlds.new("World")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.4, 0.5, 0.6, 1.0)
    scene.world = world

    # Render settings: cheap, deterministic CPU Cycles to PNG.
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 8
    scene.cycles.use_denoising = False
    scene.cycles.seed = 0
    scene.render.resolution_x, scene.render.resolution_y = 320, 180
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"

    os.makedirs(os.path.dirname(out), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=out)
    print("make_scene: wrote", out)


main()
