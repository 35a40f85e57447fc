// gguf-view: a desktop viewer of GGUF files (Dear ImGui + GLFW + OpenGL 3.3).
//
//   gguf-view [FILE...] [--select TENSOR] [--panel NAME] [--error-type TYPE] [--imatrix FILE]
//             [--compare FILE] [--mix-colour HOW] [--log] [--screenshot OUT.png] [--size WxH] [--timeout S]
//
// With --screenshot it renders until every computation for the requested view is done (or
// the timeout passes), writes the window's pixels as a PNG and exits: for tests (under Xvfb)
// and documentation.
#include <GLFW/glfw3.h>
#include <imgui.h>
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>

#include <cfloat>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "app.h"
#include "gguf/mapping.h"
#include "png.h"

namespace {

constexpr const char* kUsage = R"(usage: gguf-view [FILE...] [options]

A desktop viewer of GGUF model files: metadata, tensors, value and quantization-error
histograms, heat maps, the mix map of a quantized model, importance matrices.

options:
  --select TENSOR       open TENSOR of the first file
  --panel NAME          start on a view: overview, metadata, tensors, mix, or (with
                        --select) values, heatmap, error, importance
  --error-type TYPE     the quantization error view's target type (default q4_K)
  --imatrix FILE        an importance matrix for the first file (error view, importance)
  --compare FILE        compare the first file's tensors with this file's (error view)
  --mix-colour HOW      colour the mix map by type, bits (per weight) or error (computed
                        for every cell with the error view's setting)
  --log                 histograms with a logarithmic count axis
  --screenshot OUT.png  render, wait for the computations, write the window to OUT.png, exit
  --size WxH            window size (default 1400x900)
  --timeout SECONDS     how long --screenshot waits for computations (default 120)
  -h, --help            this text

keys: Ctrl+O open, Ctrl+F search, Ctrl+W close tab, Ctrl+Q quit; arrows and Enter in the
tensor table. Files can be dropped on the window.
)";

viewer::ui::App* g_app = nullptr;

void on_drop(GLFWwindow*, int count, const char** paths) {
    for (int i = 0; i < count && g_app; ++i) g_app->open(paths[i]);
}

void on_glfw_error(int code, const char* description) { std::fprintf(stderr, "gguf-view: GLFW error %d: %s\n", code, description); }

}  // namespace

int main(int argc, char** argv) {
    viewer::ui::StartOptions o;
    std::string screenshot;
    int width = 1400, height = 900;
    double timeout_s = 120;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&](const char* name) -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "gguf-view: %s needs a value\n", name);
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "-h" || a == "--help") {
            std::fputs(kUsage, stdout);
            return 0;
        } else if (a == "--select") {
            o.select = value("--select");
        } else if (a == "--panel") {
            const std::string p = value("--panel");
            o.panel = viewer::ui::panel_from_name(p);
            if (!o.panel) {
                std::fprintf(stderr, "gguf-view: --panel %s: not a view (overview, metadata, tensors, mix, values, heatmap, error, importance)\n", p.c_str());
                return 2;
            }
        } else if (a == "--error-type") {
            o.error_type = value("--error-type");
        } else if (a == "--imatrix") {
            o.imatrix = value("--imatrix");
        } else if (a == "--compare") {
            o.compare = value("--compare");
        } else if (a == "--mix-colour") {
            o.mix_colour = value("--mix-colour");
        } else if (a == "--log") {
            o.log_counts = true;
        } else if (a == "--screenshot") {
            screenshot = value("--screenshot");
        } else if (a == "--size") {
            const std::string s = value("--size");
            if (std::sscanf(s.c_str(), "%dx%d", &width, &height) != 2 || width < 200 || height < 150 || width > 8192 || height > 8192) {
                std::fprintf(stderr, "gguf-view: --size %s: expected WIDTHxHEIGHT, e.g. 1400x900 (200x150 to 8192x8192)\n", s.c_str());
                return 2;
            }
        } else if (a == "--timeout") {
            timeout_s = std::atof(value("--timeout").c_str());
        } else if (!a.empty() && a[0] == '-') {
            std::fprintf(stderr, "gguf-view: unknown option %s (see --help)\n", a.c_str());
            return 2;
        } else {
            o.files.push_back(a);
        }
    }
    if (!screenshot.empty() && o.files.empty()) {
        std::fprintf(stderr, "gguf-view: --screenshot needs a FILE to show\n");
        return 2;
    }

    gguf::raise_open_file_limit();  // every part of a split set stays open
    glfwSetErrorCallback(on_glfw_error);
    if (!glfwInit()) {
        std::fprintf(stderr, "gguf-view: cannot start GLFW (is there a display? DISPLAY=%s)\n", std::getenv("DISPLAY") ? std::getenv("DISPLAY") : "");
        return 2;
    }
    glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
    glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 3);
    glfwWindowHint(GLFW_OPENGL_PROFILE, GLFW_OPENGL_CORE_PROFILE);
    glfwWindowHint(GLFW_OPENGL_FORWARD_COMPAT, GLFW_TRUE);
    if (!screenshot.empty()) glfwWindowHint(GLFW_RESIZABLE, GLFW_FALSE);
    GLFWwindow* window = glfwCreateWindow(width, height, "gguf-view", nullptr, nullptr);
    if (!window) {
        std::fprintf(stderr, "gguf-view: cannot open an OpenGL 3.3 window\n");
        glfwTerminate();
        return 2;
    }
    glfwMakeContextCurrent(window);
    glfwSwapInterval(screenshot.empty() ? 1 : 0);

    IMGUI_CHECKVERSION();
    ImGui::CreateContext();
    ImGuiIO& io = ImGui::GetIO();
    io.IniFilename = nullptr;  // no imgui.ini beside the user's files
    // No keyboard navigation: the arrow keys belong to the tensor table.
    ImGui::StyleColorsDark();
    ImGui_ImplGlfw_InitForOpenGL(window, true);
    ImGui_ImplOpenGL3_Init("#version 330 core");

    int rc = 0;
    {
        viewer::ui::App app(o, screenshot.empty() ? viewer::RecentFiles::default_store() : std::filesystem::path());
        g_app = &app;
        glfwSetDropCallback(window, on_drop);
        for (const std::string& e : app.startup_errors()) std::fprintf(stderr, "gguf-view: %s\n", e.c_str());
        // A headless run still renders what the window shows (the error, for a bad file),
        // then reports the failure by its exit status.
        const bool failed_start = !screenshot.empty() && !app.startup_errors().empty();

        const auto start = std::chrono::steady_clock::now();
        int idle_frames = 0;
        while (!glfwWindowShouldClose(window) && !app.quit_requested()) {
            if (screenshot.empty()) {
                glfwWaitEventsTimeout(app.idle() ? 0.25 : 0.05);  // redraw while work is in progress
            } else {
                glfwPollEvents();
                // Software OpenGL on few cores: leave them to the computation while it runs.
                if (!app.idle()) std::this_thread::sleep_for(std::chrono::milliseconds(30));
            }
            ImGui_ImplOpenGL3_NewFrame();
            ImGui_ImplGlfw_NewFrame();
            if (!screenshot.empty()) io.MousePos = ImVec2(-FLT_MAX, -FLT_MAX);  // no hover read-outs in the picture
            ImGui::NewFrame();
            app.frame();
            ImGui::Render();
            int fb_w = 0, fb_h = 0;
            glfwGetFramebufferSize(window, &fb_w, &fb_h);
            glViewport(0, 0, fb_w, fb_h);
            glClearColor(0.08f, 0.08f, 0.09f, 1.0f);
            glClear(GL_COLOR_BUFFER_BIT);
            ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
            if (!screenshot.empty()) {
                // A few frames after the work is done, so that layouts (tables, tabs) settle.
                idle_frames = app.idle() ? idle_frames + 1 : 0;
                const bool late = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > timeout_s;
                if (idle_frames >= 4 || late) {
                    if (late) {
                        std::fprintf(stderr, "gguf-view: the computations took longer than %g s; the screenshot shows them unfinished\n", timeout_s);
                        rc = 1;
                    }
                    std::vector<uint8_t> pixels(static_cast<size_t>(fb_w) * static_cast<size_t>(fb_h) * 4);
                    glPixelStorei(GL_PACK_ALIGNMENT, 1);
                    glReadBuffer(GL_BACK);
                    glReadPixels(0, 0, fb_w, fb_h, GL_RGBA, GL_UNSIGNED_BYTE, pixels.data());
                    const std::string error = viewer::ui::write_png(screenshot, static_cast<uint32_t>(fb_w), static_cast<uint32_t>(fb_h), pixels);
                    if (!error.empty()) {
                        std::fprintf(stderr, "gguf-view: %s\n", error.c_str());
                        rc = 1;
                    } else {
                        std::printf("gguf-view: wrote %s (%d x %d)\n", screenshot.c_str(), fb_w, fb_h);
                    }
                    break;
                }
            }
            glfwSwapBuffers(window);
        }
        g_app = nullptr;
        if (failed_start) rc = 1;
    }
    ImGui_ImplOpenGL3_Shutdown();
    ImGui_ImplGlfw_Shutdown();
    ImGui::DestroyContext();
    glfwDestroyWindow(window);
    glfwTerminate();
    return rc;
}
