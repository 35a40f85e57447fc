// gguf-view's window: files in tabs, each with its overview, metadata, tensor table, tensor
// detail (values, heat map, quantization error, importance) and mix map. Drawing only: what
// it shows comes from the model layer (viewer/*.h) and its worker.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "plots.h"
#include "viewer/files.h"
#include "viewer/worker.h"

namespace viewer::ui {

// The view a headless run (or the command line) asks for.
enum class Panel { Overview, Metadata, Tensors, Values, HeatMap, Error, MixMap, Importance };
std::optional<Panel> panel_from_name(std::string_view name);
const char* panel_name(Panel p);

struct StartOptions {
    std::vector<std::string> files;
    std::string select;                 // tensor to open
    std::optional<Panel> panel;
    std::string error_type;             // target type of the error view, e.g. "q4_K"
    std::string imatrix;                // importance matrix beside the first file
    std::string compare;                // a second file of the same model to compare with
    bool log_counts = false;
    std::string mix_colour;             // the mix map's colouring: type, bits, error (error: computed for every cell)
};

class App {
public:
    explicit App(const StartOptions& options, std::filesystem::path recent_store);
    ~App();
    App(const App&) = delete;
    App& operator=(const App&) = delete;

    // Draws one frame of the whole window (call between ImGui::NewFrame and Render).
    void frame();
    // Files dropped on the window or named later.
    void open(const std::string& path);
    bool quit_requested() const { return quit_; }
    // Nothing left to compute for what is on screen (the screenshot mode waits for it).
    bool idle() const;
    // A failure a headless run must report (a file that did not open, a tensor not found).
    const std::vector<std::string>& startup_errors() const { return startup_errors_; }

private:
    struct DocTab;
    void draw_menu();
    void draw_file_browser();
    void draw_doc(DocTab& d);
    void draw_overview(DocTab& d);
    void draw_metadata(DocTab& d);
    void draw_tensors(DocTab& d);
    void draw_tensor_detail(DocTab& d);
    // The histogram view's options (log counts, bins) over `fine` rebinned for display.
    void draw_histogram(const char* id, const Histogram& fine, HistogramStyle style);
    void draw_values(DocTab& d, uint32_t tensor);
    void draw_heat_map(DocTab& d, uint32_t tensor);
    void draw_error(DocTab& d, uint32_t tensor);
    void draw_importance(DocTab& d, uint32_t tensor);
    void draw_mix_map(DocTab& d);
    void select_tensor(DocTab& d, uint32_t tensor, std::optional<Panel> panel);
    // Draws a computation's progress (with Cancel), or its failure (with `retry`); true when done.
    bool task_progress(const Worker::TaskPtr& task, const std::function<void()>& retry);
    enum class Ask { Find, Request, Retry };  // the worker call a view makes for its task
    Worker::TaskPtr values_task(DocTab& d, uint32_t tensor, Ask ask);
    Worker::TaskPtr error_task(DocTab& d, uint32_t tensor, Ask ask);
    void close_tab(size_t index);
    void poll_imatrix(DocTab& d);  // takes a matrix the worker has read
    void handle_keys();

    Worker worker_;
    RecentFiles recent_;
    std::vector<std::unique_ptr<DocTab>> docs_;
    std::vector<std::unique_ptr<DocTab>> closed_;  // closed this frame; destroyed at the next
    int current_ = -1;          // the tab shown
    int select_tab_ = -1;       // a tab to bring forward next frame
    bool quit_ = false;
    bool frame_waited_ = false;  // this frame showed a computation still waiting or running
    bool browser_open_ = false;
    std::filesystem::path browser_dir_;
    std::string browser_error_;
    std::string browser_listed_;             // the folder (and filter) browser_entries_ holds
    std::vector<DirEntry> browser_entries_;
    char browser_path_[1024] = {};
    bool focus_search_ = false;
    bool log_counts_ = false;
    int display_bins_ = 128;
    int heat_mode_ = 1;         // 0 mean, 1 rms, 2 max |x|
    std::vector<std::string> startup_errors_;
    std::vector<std::string> pending_opens_;
};

}  // namespace viewer::ui
